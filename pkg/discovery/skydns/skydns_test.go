package skydns

import (
	"testing"

	"github.com/kvop/kvop/pkg/discovery"
)

func TestLayout(t *testing.T) {
	e := discovery.Entry{Service: "web", Address: "10.0.3.7", Port: 8080, Pod: "web-0", Owner: "c/u"}
	if got, want := Key("skydns", "Kvop.Local.", e), "/skydns/local/kvop/web/10-0-3-7-8080"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
	if got, want := ID("fd00::1", 53), "fd00--1-53"; got != want {
		t.Errorf("ID = %q, want %q (one DNS label)", got, want)
	}
	v, err := Encode(NewRecord(e, 30))
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"host":"10.0.3.7","port":8080,"ttl":30,"pod":"web-0","owner":"c/u"}`; string(v) != want {
		t.Errorf("Encode = %s, want %s", v, want)
	}
	if r, err := Decode(v); err != nil || r.Owner != "c/u" {
		t.Errorf("Decode = %+v, %v", r, err)
	}
	if _, err := Decode([]byte(`{"port":1}`)); err == nil {
		t.Error("a record without host decoded")
	}
}
