package kvtest_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvop/kvop/pkg/kvstore/kvtest"
)

func TestMain(m *testing.M) { kvtest.Main(m) }

var namespaceSeq atomic.Int64

func memNamespace() []string {
	return []string{fmt.Sprintf("mem-%d-%d", os.Getpid(), namespaceSeq.Add(1))}
}

// TestMemSuite runs the suite on memstore, which follows the contract: everything must pass.
func TestMemSuite(t *testing.T) {
	kvtest.Run(t, kvtest.Suite{
		Backend:    memBackend,
		Addrs:      memNamespace(),
		FreshAddrs: func(testing.TB) []string { return memNamespace() },
		TTL:        500 * time.Millisecond,
	})
}

// TestSuiteCatchesBugs plants one bug at a time in memstore and checks that the subtests
// meant to catch it fail: a suite that cannot fail checks nothing.
func TestSuiteCatchesBugs(t *testing.T) {
	if mutation != "" {
		return // a mutation child runs the suite only, not this driver
	}
	cases := map[string][]string{
		"unsorted-list":        {"ListBelowDirectory"},
		"prefix-sibling":       {"ListBelowDirectory", "WatchTreeFirstEventIsFullList"},
		"cas-ignores-index":    {"AtomicPutCompareAndSwap", "AtomicPutConcurrentRacers"},
		"reuse-index":          {"LastIndexNeverRepeats"},
		"no-delete-event":      {"WatchEveryChange"},
		"lock-no-exclusion":    {"LockMutualExclusion", "UnlockWakesWaiter"},
		"lock-poll":            {"UnlockWakesWaiter"},
		"close-keeps-lock":     {"CloseReleasesLock"},
		"ttl-ignored":          {"TTLExpires"},
		"keepalive-ignored":    {"KeepAliveUntilClose"},
		"empty-as-absent":      {"EmptyValue"},
		"watch-ignores-cancel": {"WatchClosesOnCancel"},
	}
	for m, want := range cases {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			out := runMutation(t, m, want)
			for _, w := range want {
				if !strings.Contains(out, "--- FAIL: TestMemSuite/"+w+" ") {
					t.Errorf("bug %q: subtest %s did not fail:\n%s", m, w, out)
				}
			}
		})
	}
	// A goroutine that outlives Close fails the suite as a whole, even when every subtest passed.
	t.Run("leak-goroutine", func(t *testing.T) {
		t.Parallel()
		out := runMutation(t, "leak-goroutine", []string{"Exists", "GetAbsent"})
		if !strings.Contains(out, "goroutines started by the suite still run") || strings.Contains(out, "--- FAIL: TestMemSuite/") {
			t.Errorf("bug %q: the goroutine check did not fail the suite (alone):\n%s", "leak-goroutine", out)
		}
	})
}

// runMutation runs the subtests of TestMemSuite named in subtests, in a child process with the
// bug planted, and returns its output; the run must fail.
func runMutation(t *testing.T, m string, subtests []string) string {
	cmd := exec.Command(os.Args[0], "-test.v", "-test.count=1",
		"-test.run=^TestMemSuite$/^("+strings.Join(subtests, "|")+")$")
	cmd.Env = append(os.Environ(), "KVTEST_MEM_MUTATION="+m)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the suite passed with bug %q planted:\n%s", m, out)
	}
	return string(out)
}
