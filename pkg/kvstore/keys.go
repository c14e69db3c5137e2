package kvstore

import (
	"fmt"
	"strings"
)

// NormalizeKey returns the canonical form of a key or directory: no leading or trailing "/",
// and no empty path segments ("/a//b/" becomes "a/b"). So "/a/b/", "a/b" and "/a/b" name the
// same key on every backend. It fails with ErrInvalidKey for an empty key, a "." or ".." segment
// (ZooKeeper and etcd v2 cannot store them, so no backend accepts them), or a NUL byte.
func NormalizeKey(key string) (string, error) {
	if isCanonical(key) {
		return key, nil // the usual case (callers pass keys they got back): no allocation
	}
	segments := strings.Split(key, "/")
	kept := segments[:0]
	for _, s := range segments {
		switch s {
		case "":
			continue
		case ".", "..":
			return "", fmt.Errorf("%w: %q has a %q segment", ErrInvalidKey, key, s)
		}
		kept = append(kept, s)
	}
	if len(kept) == 0 {
		return "", fmt.Errorf("%w: key is empty", ErrInvalidKey)
	}
	out := strings.Join(kept, "/")
	if strings.IndexByte(out, 0) >= 0 {
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrInvalidKey, key)
	}
	return out, nil
}

// isCanonical reports whether NormalizeKey would return key unchanged: not empty, no leading,
// trailing or doubled "/", no "." or ".." segment, no NUL byte.
func isCanonical(key string) bool {
	if key == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) && key[i] != '/' {
			if key[i] == 0 {
				return false
			}
			continue
		}
		switch seg := key[start:i]; seg {
		case "", ".", "..":
			return false
		}
		start = i + 1
	}
	return true
}

// IsBelow reports whether the normalised key lies strictly below the normalised directory.
func IsBelow(key, directory string) bool {
	return len(key) > len(directory) && strings.HasPrefix(key, directory) && key[len(directory)] == '/'
}
