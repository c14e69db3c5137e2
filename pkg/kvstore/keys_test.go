package kvstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvop/kvop/pkg/kvstore"
)

func TestNormalizeKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a", "a"},
		{"/a/b/", "a/b"},
		{"a/b", "a/b"},
		{"/a/b", "a/b"},
		{"//a///b//", "a/b"},
		{"a/.b/c.", "a/.b/c."},
		{"a/b c/%20?#", "a/b c/%20?#"},
		{"ünï/cødé", "ünï/cødé"},
		{"...", "..."},
	} {
		got, err := kvstore.NormalizeKey(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("NormalizeKey(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestNormalizeKeyRefuses(t *testing.T) {
	for _, in := range []string{"", "/", "///", "a/./b", "a/../b", "..", ".", "a/\x00"} {
		got, err := kvstore.NormalizeKey(in)
		if !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Errorf("NormalizeKey(%q) = %q, %v; want ErrInvalidKey", in, got, err)
		}
	}
}

func TestIsBelow(t *testing.T) {
	for _, tc := range []struct {
		key, dir string
		want     bool
	}{
		{"a/b", "a", true},
		{"a/b/c", "a", true},
		{"a", "a", false},
		{"ab", "a", false},
		{"a-b/c", "a", false},
		{"b/a", "a", false},
	} {
		if got := kvstore.IsBelow(tc.key, tc.dir); got != tc.want {
			t.Errorf("IsBelow(%q, %q) = %v, want %v", tc.key, tc.dir, got, tc.want)
		}
	}
}

// FuzzNormalizeKey: whatever the input, the result is either ErrInvalidKey or a canonical key:
// non-empty, no leading, trailing or doubled "/", no "." or ".." segment, no NUL — and
// normalising it again changes nothing.
func FuzzNormalizeKey(f *testing.F) {
	for _, seed := range []string{"a", "/a/b/", "a//b", "a/../b", ".", "", "\x00", "ü/\xff", "a/./b/",
		"/", "//", "a/b", "/a", "a/", "..", "a/.", "a/..", "./a", ".a", "a.", "a/..b", "a/b.", "...",
		"a\x00b", "kvtest-bench/1/k", "a b/c"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := kvstore.NormalizeKey(in)
		if err != nil {
			if !errors.Is(err, kvstore.ErrInvalidKey) {
				t.Fatalf("NormalizeKey(%q): error %v does not wrap ErrInvalidKey", in, err)
			}
			return
		}
		if got == "" || strings.HasPrefix(got, "/") || strings.HasSuffix(got, "/") || strings.Contains(got, "//") ||
			strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("NormalizeKey(%q) = %q is not canonical", in, got)
		}
		for _, seg := range strings.Split(got, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("NormalizeKey(%q) = %q keeps a %q segment", in, got, seg)
			}
		}
		if want := referenceNormalize(in); got != want {
			t.Fatalf("NormalizeKey(%q) = %q; splitting and joining gives %q", in, got, want)
		}
		if again, err := kvstore.NormalizeKey(got); err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
	})
}

// referenceNormalize is the plain definition of a normalised key, which NormalizeKey's fast
// path for keys already in that form must agree with.
func referenceNormalize(key string) string {
	var kept []string
	for _, seg := range strings.Split(key, "/") {
		if seg != "" {
			kept = append(kept, seg)
		}
	}
	return strings.Join(kept, "/")
}
