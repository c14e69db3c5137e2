package etcdv2

import (
	"bytes"
	"testing"
	"time"
)

func TestNodePaths(t *testing.T) {
	for _, c := range []struct{ key, node string }{
		{"a", "/kvop/a/~"},
		{"a/b", "/kvop/a/b/~"},
		{"_x/~y", "/kvop/~_x/~~y/~"},
		{"~", "/kvop/~~/~"},
		{"~~/_", "/kvop/~~~/~_/~"},
		{"x~/a_", "/kvop/x~/a_/~"},
	} {
		if got := valueNode(c.key); got != c.node {
			t.Errorf("valueNode(%q) = %q, want %q", c.key, got, c.node)
		}
		if k, ok := userKey(c.node); !ok || k != c.key {
			t.Errorf("userKey(%q) = %q, %v; want %q", c.node, k, ok, c.key)
		}
	}
	for _, node := range []string{"/kvop/~", "/kvop/a", "/kvop/a/b", "/other/a/~", "/kvop//~"} {
		if k, ok := userKey(node); ok {
			t.Errorf("userKey(%q) = %q, want no key", node, k)
		}
	}
	if p := parentNode("/kvop/a/b"); p != "/kvop/a" {
		t.Errorf("parentNode(/kvop/a/b) = %q", p)
	}
	if p := parentNode("/kvop/a"); p != "" {
		t.Errorf("parentNode(/kvop/a) = %q, want \"\" (the root is never pruned)", p)
	}
}

func TestValueEncoding(t *testing.T) {
	for _, v := range [][]byte{{}, []byte("text"), []byte("=@#"), []byte("#12=x"), {0}, {0xff, 0xfe}, []byte("日本")} {
		for _, index := range []uint64{0, 42} {
			raw := encodeValue(v, index)
			got, last, explicit := decodeValue(raw, 7)
			want := uint64(7)
			if index != 0 {
				want = index
			}
			if !bytes.Equal(got, v) || got == nil || last != want || explicit != (index != 0) {
				t.Errorf("decode(encode(%q, %d)) = %q, %d, %v", v, index, got, last, explicit)
			}
			// What the keep-alive writes: the index spelled out in front of the plain encoding.
			if index == 0 {
				got, last, _ := decodeValue("#9"+raw, 7)
				if !bytes.Equal(got, v) || last != 9 {
					t.Errorf("decode(#9 + encode(%q)) = %q, %d", v, got, last)
				}
			}
		}
	}
	// A value kvop did not write is taken as it is.
	if got, last, _ := decodeValue("plain", 3); string(got) != "plain" || last != 3 {
		t.Errorf("decode(plain) = %q, %d", got, last)
	}
}

func TestTTLSeconds(t *testing.T) {
	for in, want := range map[int64]int64{0: 0, 1: 1e9, 1e9: 1e9, 1e9 + 1: 2e9, 1500e6: 2e9, 2e9: 2e9} {
		if got := ttlSeconds(time.Duration(in)); int64(got) != want {
			t.Errorf("ttlSeconds(%d) = %d, want %d", in, got, want)
		}
	}
}
