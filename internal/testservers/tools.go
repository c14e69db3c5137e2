package testservers

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// repoRoot is the kvop checkout this package was compiled from.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	versionsOnce sync.Once
	versions     map[string]string
	versionsErr  error
)

// version returns a pin from hack/tools.env, the file hack/tools.sh installs from.
func version(name string) (string, error) {
	versionsOnce.Do(func() {
		versions, versionsErr = readEnvFile(filepath.Join(repoRoot(), "hack", "tools.env"))
	})
	if versionsErr != nil {
		return "", versionsErr
	}
	v, ok := versions[name]
	if !ok {
		return "", fmt.Errorf("hack/tools.env has no %s", name)
	}
	return v, nil
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading tool versions: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, sc.Err()
}

// ToolsDir is where `make tools` installs servers: $KVOP_TOOLS or ~/.cache/kvop/tools.
func ToolsDir() string {
	if d := os.Getenv("KVOP_TOOLS"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = os.TempDir()
	}
	return filepath.Join(home, ".cache", "kvop", "tools")
}

// toolPath returns $KVOP_TOOLS/<name>-<version>/<file>, or an error telling how to install it.
func toolPath(name, versionKey, file string) (string, error) {
	v, err := version(versionKey)
	if err != nil {
		return "", err
	}
	p := filepath.Join(ToolsDir(), name+"-"+v, file)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s %s is not installed (%s missing): run `make tools`", name, v, p)
	}
	return p, nil
}

// Kubectl returns the kubectl that `make tools` builds.
func Kubectl() (string, error) { return toolPath("kubectl", "KUBERNETES_VERSION", "kubectl") }
