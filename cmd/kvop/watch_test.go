package main

import (
	"syscall"
	"testing"
	"time"

	"github.com/kvop/kvop/internal/backendtest"
)

// startTimeout bounds how long a kvop takes to open its store and print its first line
// (a race-enabled binary on a busy machine).
const startTimeout = 30 * time.Second

// eventTimeout bounds how long a watch takes to report a change.
const eventTimeout = 10 * time.Second

// A BoltDB file is open in one process at a time, so while "kvop watch" holds it no other kvop
// can change it: on boltdb the watch tests check the first event (the current state) and the
// clean exit; the networked backends also get changes made by other kvop processes.
const singleProcessNote = "%s: one process at a time may open the file, so no other kvop can write while this one runs; checking the first event only"

func TestWatchKey(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		k := newKvop(t, tg.Fresh(t))
		k.must("put", "w/key", "v0")

		p := k.start("watch", "-o", "json", "w/key")
		if got := decode[pairJSON](t, p.next(startTimeout)); got.Key != "w/key" || got.bytes(t) != "v0" || got.LastIndex == 0 {
			t.Fatalf("first event %+v, want w/key = v0", got)
		}
		if tg.SingleProcess {
			t.Logf(singleProcessNote, tg.Backend)
		} else {
			k.must("put", "w/key", "v1")
			if got := decode[pairJSON](t, p.next(eventTimeout)); got.bytes(t) != "v1" {
				t.Fatalf("event after put: %+v, want v1", got)
			}
			k.must("rm", "w/key")
			if line := p.next(eventTimeout); line != "null" {
				t.Fatalf("event after rm: %q, want null", line)
			}
			k.must("put", "w/key", "\xff")
			if got := decode[pairJSON](t, p.next(eventTimeout)); got.Encoding != "base64" || got.bytes(t) != "\xff" {
				t.Fatalf("event after put of a binary value: %+v", got)
			}
		}
		p.signal(syscall.SIGINT)
		if code := p.wait(eventTimeout); code != 0 || p.Stderr() != "" {
			t.Fatalf("watch after SIGINT: exit %d, stderr %q; want 0 and nothing", code, p.Stderr())
		}

		// Plain output, starting from an absent key.
		k.must("rm", "w/key")
		p = k.start("watch", "w/key")
		if line := p.next(startTimeout); line != "<deleted>" {
			t.Fatalf("first event of an absent key: %q, want <deleted>", line)
		}
		if !tg.SingleProcess {
			k.must("put", "w/key", "two\nlines")
			if line := p.next(eventTimeout); line != `"two\nlines"` {
				t.Fatalf("event after put: %q, want the value Go-quoted", line)
			}
		}
		p.signal(syscall.SIGTERM)
		if code := p.wait(eventTimeout); code != 0 {
			t.Fatalf("watch after SIGTERM: exit %d, stderr %q", code, p.Stderr())
		}
	})
}

func TestWatchTree(t *testing.T) {
	backendtest.Each(t, func(t *testing.T, tg *backendtest.Target) {
		k := newKvop(t, tg.Fresh(t))
		k.must("put", "dir/a", "A")
		k.must("put", "dir/sub/b", "B")
		k.must("put", "other", "not below dir")

		p := k.start("watch", "--tree", "-o", "json", "dir")
		first := decode[[]pairJSON](t, p.next(startTimeout))
		if len(first) != 2 || first[0].Key != "dir/a" || first[1].Key != "dir/sub/b" || first[1].bytes(t) != "B" {
			t.Fatalf("first event %+v, want dir/a and dir/sub/b", first)
		}
		if tg.SingleProcess {
			t.Logf(singleProcessNote, tg.Backend)
		} else {
			k.must("rm", "dir/a")
			if got := decode[[]pairJSON](t, p.next(eventTimeout)); len(got) != 1 || got[0].Key != "dir/sub/b" {
				t.Fatalf("event after rm: %+v, want only dir/sub/b", got)
			}
		}
		p.signal(syscall.SIGINT)
		if code := p.wait(eventTimeout); code != 0 {
			t.Fatalf("watch --tree after SIGINT: exit %d, stderr %q", code, p.Stderr())
		}

		// Plain output: the first event lists everything, later ones what changed.
		p = k.start("watch", "--tree", "dir")
		want := []string{"dir/a\tA", "dir/sub/b\tB"}
		if !tg.SingleProcess {
			want = want[1:] // dir/a was removed above
		}
		for i, w := range want {
			timeout := eventTimeout
			if i == 0 {
				timeout = startTimeout
			}
			if line := p.next(timeout); line != w {
				t.Fatalf("first event: line %q, want %q", line, w)
			}
		}
		if !tg.SingleProcess {
			k.must("put", "dir/c", "C")
			if line := p.next(eventTimeout); line != "dir/c\tC" {
				t.Fatalf("event after put: %q, want only the new key", line)
			}
			k.must("rm", "dir/sub/b")
			if line := p.next(eventTimeout); line != "dir/sub/b\t<deleted>" {
				t.Fatalf("event after rm: %q", line)
			}
		}
		p.signal(syscall.SIGTERM)
		if code := p.wait(eventTimeout); code != 0 {
			t.Fatalf("watch --tree after SIGTERM: exit %d, stderr %q", code, p.Stderr())
		}
	})
}
