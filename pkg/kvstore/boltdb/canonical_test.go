package boltdb

import (
	"testing"

	"github.com/kvop/kvop/pkg/kvstore"
)

// normalize's fast path must agree with kvstore.NormalizeKey on every key.
func TestIsCanonicalAgreesWithNormalizeKey(t *testing.T) {
	for _, key := range []string{
		"", "/", "//", "a", "a/b", "/a", "a/", "a//b", ".", "..", "a/.", "a/..", "./a", "a/./b",
		"a/../b", ".a", "a.", "a/..b", "a/b.", "...", "a\x00b", "\x00", "kvtest-bench/1/k",
		"a/b/c/d", "a b/c", "é/ü",
	} {
		norm, err := kvstore.NormalizeKey(key)
		want := err == nil && norm == key
		if got := isCanonical(key); got != want {
			t.Errorf("isCanonical(%q) = %v; NormalizeKey = %q, %v", key, got, norm, err)
		}
	}
}

func FuzzIsCanonical(f *testing.F) {
	for _, s := range []string{"a/b", "/a", "a//b", "a/./b", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		norm, err := kvstore.NormalizeKey(key)
		want := err == nil && norm == key
		if got := isCanonical(key); got != want {
			t.Errorf("isCanonical(%q) = %v; NormalizeKey = %q, %v", key, got, norm, err)
		}
	})
}
