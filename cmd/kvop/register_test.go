package main

import (
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/kvop/kvop/internal/backendtest"
)

// entry is a service entry as "kvop services -o json" prints it.
type entry struct {
	Service  string            `json:"service"`
	Address  string            `json:"address"`
	Port     int               `json:"port"`
	Metadata map[string]string `json:"metadata"`
	Owner    string            `json:"owner"`
}

func TestRegister(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		k := newKvop(t, tg.Fresh(t))
		register := []string{"register", "-v", "--service", "web", "--address", "10.0.0.7", "--port", "8080",
			"--meta", "zone=eu-1", "--meta", "version=1.4", "--owner", "tester", "--ttl", "60s"}
		want := entry{Service: "web", Address: "10.0.0.7", Port: 8080,
			Metadata: map[string]string{"zone": "eu-1", "version": "1.4"}, Owner: "tester"}

		p := k.start(register...)
		p.waitStderr("kvop: registered web at 10.0.0.7:8080", startTimeout)
		if tg.SingleProcess {
			// No other kvop can read the file while this one holds it. A kvop killed outright
			// leaves its entry until the TTL expires, so kill it and read then.
			t.Logf("%s: one process at a time may open the file: reading the entry after SIGKILL ends the registering kvop", tg.Backend)
			p.signal(syscall.SIGKILL)
			p.wait(eventTimeout)
		}
		if got := decode[[]entry](t, k.must("services", "web", "-o", "json")); len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Fatalf("services web -o json = %+v, want [%+v]", got, want)
		}
		table := k.must("services")
		for _, w := range []string{"SERVICE", "web", "10.0.0.7:8080", "tester", "version=1.4,zone=eu-1"} {
			if !strings.Contains(table, w) {
				t.Errorf("services table %q lacks %q", table, w)
			}
		}
		if tg.SingleProcess {
			p = k.start(register...) // again, to see SIGINT deregister it
			p.waitStderr("kvop: registered web", startTimeout)
		}

		p.signal(syscall.SIGINT)
		if code := p.wait(eventTimeout); code != 0 || !strings.Contains(p.Stderr(), "kvop: deregistered web at 10.0.0.7:8080") {
			t.Fatalf("register after SIGINT: exit %d, stderr %q; want 0 and a deregistration", code, p.Stderr())
		}
		if got := k.must("services", "web", "-o", "json"); got != "[]\n" {
			t.Errorf("services web -o json after deregistration = %q, want []", got)
		}
		if got := k.must("services"); got != "" {
			t.Errorf("services after deregistration = %q, want nothing", got)
		}
	})
}
