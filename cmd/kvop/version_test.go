package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The version is "dev" unless the build sets main.version, as releases do.
func TestVersion(t *testing.T) {
	if got := runBare(t, "version").stdout; !strings.HasPrefix(got, "kvop dev (go") {
		t.Errorf("kvop version = %q, want \"kvop dev (go...\"", got)
	}
	bin := filepath.Join(t.TempDir(), "kvop")
	if err := build(bin, "-ldflags", "-X main.version=v1.2.3-test"); err != nil {
		t.Fatalf("building with -ldflags: %v", err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "kvop v1.2.3-test (go") {
		t.Errorf("kvop version of a release build = %q, %v", out, err)
	}
	out, err = exec.Command(bin, "--version").Output()
	if err != nil || string(out) != "kvop v1.2.3-test\n" {
		t.Errorf("kvop --version = %q, %v", out, err)
	}
}
