package curator

import (
	"reflect"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/discovery"
)

func TestParseURISpec(t *testing.T) {
	got, err := ParseURISpec("{scheme}://{address}:{port}/x")
	if err != nil {
		t.Fatal(err)
	}
	want := []URIPart{{"scheme", true}, {"://", false}, {"address", true}, {":", false}, {"port", true}, {"/x", false}}
	if !reflect.DeepEqual(got.Parts, want) {
		t.Errorf("parts %+v, want %+v", got.Parts, want)
	}
	if s, err := ParseURISpec(""); s != nil || err != nil {
		t.Errorf(`ParseURISpec("") = %v, %v; want none`, s, err)
	}
	if _, err := ParseURISpec("{open"); err == nil {
		t.Error("an unclosed brace parsed")
	}
}

func TestInstance(t *testing.T) {
	e := discovery.Entry{Service: "api", Address: "10.0.0.1", Port: 9000, Pod: "p", Namespace: "ns", Owner: "c/u",
		Metadata: map[string]string{"zone": "a"}}
	if got := Path("/services/", e); got != "/services/api/10.0.0.1:9000" {
		t.Errorf("Path = %q", got)
	}
	v, err := Encode(NewInstance(e, time.UnixMilli(1700000000123), nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"api","id":"10.0.0.1:9000","address":"10.0.0.1","port":9000,"sslPort":null,` +
		`"payload":{"@class":"java.util.LinkedHashMap","kvop.io/namespace":"ns","kvop.io/owner":"c/u","kvop.io/pod":"p","zone":"a"},` +
		`"registrationTimeUTC":1700000000123,"serviceType":"DYNAMIC","uriSpec":null,"enabled":true}`
	if string(v) != want {
		t.Errorf("Encode =\n%s\nwant\n%s", v, want)
	}
	inst, err := Decode(v)
	if err != nil || inst.Owner() != "c/u" {
		t.Errorf("Decode: %+v %v", inst, err)
	}
}
