package cli

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvop/kvop/pkg/kvstore"
)

// runKvop runs kvop in this process, as the binary would with args and stdin.
func runKvop(t *testing.T, stdin string, getenv map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run("test", args, strings.NewReader(stdin), &out, &errOut, env(getenv))
	return code, out.String(), errOut.String()
}

// Command lines that are wrong exit 2, with the mistake and a pointer to --help.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"get", "--frobnicate", "k"}, "unknown flag: --frobnicate"},
		{"unknown command", []string{"frob"}, `unknown command "frob"`},
		{"missing KEY", []string{"get"}, "accepts 1 arg(s), received 0"},
		{"extra argument", []string{"put", "k", "v", "w"}, "accepts 2 arg(s), received 3"},
		{"bad output", []string{"get", "-o", "yaml", "k"}, `--output "yaml"`},
		{"bad key", []string{"get", "a/../b"}, `KEY "a/../b"`},
		{"empty key", []string{"put", "/", "v"}, "key is empty"},
		{"ls without DIR or prefix", []string{"ls"}, "give a DIR"},
		{"unknown backend", []string{"--backend", "redis", "get", "k"}, `unknown backend "redis"`},
		{"elect without key", []string{"elect", "--", "true"}, "--key is required"},
		{"elect without command", []string{"elect", "--key", "k"}, "requires at least 1 arg"},
		{"register without port", []string{"register", "--service", "s", "--address", "a"}, `"port" not set`},
		{"register bad service", []string{"register", "--service", "a/b", "--address", "a", "--port", "1"}, "service"},
		{"register bad meta", []string{"register", "--service", "s", "--address", "a", "--port", "1", "--meta", "novalue"}, "key=value"},
		{"negative ttl", []string{"put", "--ttl", "-1s", "k", "v"}, "--ttl must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runKvop(t, "", nil, tt.args...)
			if code != ExitUsage {
				t.Errorf("exit code %d, want %d (stderr %q)", code, ExitUsage, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if !strings.HasPrefix(stderr, "kvop: ") || !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, "--help") {
				t.Errorf("stderr %q: want \"kvop: ...%s...\" and a pointer to --help", stderr, tt.want)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	code, stdout, _ := runKvop(t, "", map[string]string{"KVOP_TIMEOUT": "bogus"}, "version")
	if code != 0 || !strings.HasPrefix(stdout, "kvop test (go") {
		t.Errorf("version: exit %d, stdout %q (a bad environment must not break it)", code, stdout)
	}
	code, stdout, _ = runKvop(t, "", nil, "elect", "--help")
	for _, want := range []string{"KVOP_LEADER_TERM", "--grace", "Examples:", "[$KVOP_BACKEND]"} {
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("elect --help: exit %d, output lacks %q", code, want)
		}
	}
	code, stdout, _ = runKvop(t, "", nil, "--help")
	if code != 0 || !strings.Contains(stdout, "Exit codes:") {
		t.Errorf("--help: exit %d, output lacks the exit codes", code)
	}
}

// The commands round-trip values through an in-process BoltDB file; the end-to-end tests in
// cmd/kvop run the binary against every backend.
func TestInProcessRoundTrip(t *testing.T) {
	vars := map[string]string{"KVOP_ENDPOINTS": filepath.Join(t.TempDir(), "kv.db"), "KVOP_PREFIX": "p"}
	must := func(stdin string, args ...string) string {
		t.Helper()
		code, stdout, stderr := runKvop(t, stdin, vars, args...)
		if code != 0 {
			t.Fatalf("kvop %q: exit %d: %s", args, code, stderr)
		}
		return stdout
	}
	binary := "\xff\x00\x01tab\there"
	must("", "put", "a/text", "héllo")
	must(binary, "put", "/a/bin/", "-")
	if got := must("", "get", "-o", "raw", "a/bin"); got != binary {
		t.Errorf("get -o raw = %q, want %q", got, binary)
	}
	if got := must("", "get", "a/text"); got != "héllo\n" {
		t.Errorf("get = %q", got)
	}
	var pairs []pairJSON
	if err := json.Unmarshal([]byte(must("", "ls", "-o", "json")), &pairs); err != nil || len(pairs) != 2 {
		t.Fatalf("ls -o json: %v, %+v", err, pairs)
	}
	for _, p := range pairs {
		v, err := decodeValue(p)
		want := map[string]string{"a/bin": binary, "a/text": "héllo"}[p.Key]
		if err != nil || string(v) != want || p.LastIndex == 0 {
			t.Errorf("ls -o json entry %+v decodes to %q, %v; want %q and a lastIndex", p, v, err, want)
		}
	}
	if got := must("", "ls", "-l", "a"); got != "a/bin\t"+`"\xff\x00\x01tab\there"`+"\na/text\théllo\n" {
		t.Errorf("ls -l = %q", got)
	}
	must("", "rm", "-r", "a")
	if got := must("", "ls", "-o", "json"); got != "[]\n" {
		t.Errorf("ls -o json of nothing = %q, want []", got)
	}
	code, stdout, stderr := runKvop(t, "", vars, "get", "a/text")
	if code != ExitKeyNotFound || stdout != "" || stderr != "kvop: get \"a/text\": key not found\n" {
		t.Errorf("get of a deleted key: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestDisplayValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":  "plain text",
		"":            "",
		"tab\there":   `"tab\there"`,
		"two\nlines":  `"two\nlines"`,
		"\"quoted\"":  `"\"quoted\""`,
		"\xff":        `"\xff"`,
		"ünïcödé ✓":   "ünïcödé ✓",
		"bell\a":      `"bell\a"`,
		"\u00a0space": "\u00a0space",
	} {
		if got := displayValue([]byte(in)); got != want {
			t.Errorf("displayValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPairJSON(t *testing.T) {
	for _, v := range []string{"", "text", "\xff\xfe", "nul\x00byte"} {
		p := toPairJSON("k", &kvstore.KVPair{Key: "x/k", Value: []byte(v), LastIndex: 7})
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back pairJSON
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatal(err)
		}
		got, err := decodeValue(back)
		if err != nil || string(got) != v || back.Key != "k" || back.LastIndex != 7 {
			t.Errorf("%q → %s → %q, %v", v, raw, got, err)
		}
	}
}
