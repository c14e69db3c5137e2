package main

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
	"github.com/kvop/kvop/pkg/kvstore"
)

// pairJSON is what -o json prints for a key.
type pairJSON struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Encoding  string `json:"encoding"`
	LastIndex uint64 `json:"lastIndex"`
}

func (p pairJSON) bytes(t *testing.T) string {
	t.Helper()
	if p.Encoding == "base64" {
		b, err := base64.StdEncoding.DecodeString(p.Value)
		if err != nil {
			t.Fatalf("value of %q: %v", p.Key, err)
		}
		return string(b)
	}
	if p.Encoding != "" {
		t.Fatalf("unknown encoding %q", p.Encoding)
	}
	return p.Value
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output %q is not the JSON expected: %v", s, err)
	}
	return v
}

func TestPutGetListRemove(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		k := newKvop(t, tg.Fresh(t))
		const binary = "\xff\xfe\x00bin\tary\n"

		k.must("put", "app/color", "blue")
		k.must("put", "/app/size/", "") // an empty value is a value
		if r := k.runIn(binary, "put", "app/blob", "-"); r.code != 0 {
			t.Fatalf("put from stdin: %s", r)
		}

		if got := k.must("get", "app/color"); got != "blue\n" {
			t.Errorf("get = %q, want \"blue\\n\"", got)
		}
		if got := k.must("get", "-o", "raw", "app/blob"); got != binary {
			t.Errorf("get -o raw = %q, want %q", got, binary)
		}
		color := decode[pairJSON](t, k.must("get", "-o", "json", "app/color"))
		if color.Key != "app/color" || color.bytes(t) != "blue" || color.Encoding != "" || color.LastIndex == 0 {
			t.Errorf("get -o json = %+v", color)
		}
		blob := decode[pairJSON](t, k.must("get", "-o", "json", "app/blob"))
		if blob.Encoding != "base64" || blob.bytes(t) != binary {
			t.Errorf("get -o json of a binary value = %+v, want it base64-encoded", blob)
		}

		k.must("put", "app/color", "green")
		after := decode[pairJSON](t, k.must("get", "-o", "json", "app/color"))
		if after.bytes(t) != "green" || after.LastIndex <= color.LastIndex {
			t.Errorf("after a second put: %+v, want green and a lastIndex above %d", after, color.LastIndex)
		}

		if got := k.must("ls", "app"); got != "app/blob\napp/color\napp/size\n" {
			t.Errorf("ls = %q", got)
		}
		if got := k.must("ls", "-l", "app"); got != "app/blob\t"+`"\xff\xfe\x00bin\tary\n"`+"\napp/color\tgreen\napp/size\t\n" {
			t.Errorf("ls -l = %q", got)
		}
		list := decode[[]pairJSON](t, k.must("ls", "-o", "json")) // the whole prefix
		got := map[string]string{}
		for _, p := range list {
			got[p.Key] = p.bytes(t)
		}
		if want := map[string]string{"app/blob": binary, "app/color": "green", "app/size": ""}; !reflect.DeepEqual(got, want) {
			t.Errorf("ls -o json = %q, want %q", got, want)
		}

		k.must("rm", "app/color")
		r := k.run("get", "app/color")
		if r.code != 3 || r.stdout != "" || r.stderr != "kvop: get \"app/color\": key not found\n" {
			t.Errorf("get of a removed key: %s; want exit 3 and one \"key not found\" line", r)
		}
		k.must("rm", "app/color") // removing an absent key succeeds

		k.must("put", "app/deep/er/key", "x")
		k.must("rm", "-r", "app")
		if got := k.must("ls", "-o", "json", "app"); got != "[]\n" {
			t.Errorf("ls -o json after rm -r = %q, want []", got)
		}
		if got := k.must("ls", "app"); got != "" {
			t.Errorf("ls after rm -r = %q, want nothing", got)
		}
	})
}

// Keys written with --ttl vanish on their own.
func TestPutTTL(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		k := newKvop(t, tg.Fresh(t))
		const ttl = 2 * time.Second
		k.must("put", "--ttl", ttl.String(), "ephemeral", "v")
		written := time.Now()
		if tg.Backend == kvstore.ZooKeeper {
			// A ZooKeeper TTL key is an ephemeral node of the writer's session, which ended when
			// kvop exited: it may be gone already (documented in "kvop put --help").
			t.Log("zookeeper: the key lives only as long as the writing kvop; not checking it is still there")
		} else if got := k.must("get", "ephemeral"); got != "v\n" {
			t.Fatalf("get right after put --ttl = %q", got)
		}
		bound := tg.TTLBound(ttl) + 2*time.Second // + kvop's own start-up under -race
		for {
			r := k.run("get", "ephemeral")
			if r.code == 3 {
				t.Logf("gone %s after the write (bound %s)", time.Since(written).Round(time.Millisecond), bound)
				return
			}
			if r.code != 0 {
				t.Fatalf("get: %s", r)
			}
			if time.Since(written) > bound {
				t.Fatalf("the key is still there %s after it was written with --ttl %s", time.Since(written), ttl)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// The global flags can come from KVOP_* variables, and flags win over them.
func TestEnvironment(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		k := newKvop(t, tg.Fresh(t))
		k.must("put", "k", "v")
		// Everything from the environment, except a wrong timeout that the flag overrides.
		cmd := bare("--timeout", "10s", "get", "k")
		cmd.Env = append(cmd.Env, "KVOP_BACKEND="+string(tg.Backend), "KVOP_ENDPOINTS="+strings.Join(k.tg.Addrs, ","),
			"KVOP_PREFIX="+k.prefix, "KVOP_TIMEOUT=bogus")
		if tg.Config.SessionTimeout > 0 {
			cmd.Env = append(cmd.Env, "KVOP_SESSION_TIMEOUT="+tg.Config.SessionTimeout.String())
		}
		out, err := cmd.Output()
		if err != nil || string(out) != "v\n" {
			t.Fatalf("get configured by the environment: %q, %v", out, err)
		}
	})
}
