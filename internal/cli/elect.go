package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvop/kvop/pkg/leadership"
)

// Environment variables kvop elect gives its command.
const (
	envLeaderTerm = "KVOP_LEADER_TERM"
	envLeaderKey  = "KVOP_LEADER_KEY"
	envLeaderID   = "KVOP_LEADER_ID"
)

const electLong = `Campaign for leadership of KEY and run CMD only while leader.

When kvop becomes leader it starts CMD, with kvop's standard input, output and error, and with
  KVOP_LEADER_TERM  the fencing term of this leadership: a number that grows every time
                    leadership changes hands. Send it with every write to systems that can
                    refuse writes from an older term: that stops a paused, deposed leader.
  KVOP_LEADER_KEY   the election's key in the store
  KVOP_LEADER_ID    this candidate's --id
in its environment. CMD runs in a process group of its own, which kvop stops as a whole (so
CMD cannot read from a terminal; Ctrl-C goes to kvop, which then stops CMD in order).

When leadership is lost (the store expired or lost kvop's session, someone deleted the key),
kvop stops CMD — SIGTERM to its process group, SIGKILL after --grace — and campaigns again;
it starts CMD anew when it leads again.

When CMD exits on its own, kvop resigns and exits with CMD's exit code (128+N if a signal N
killed it). When kvop gets SIGTERM, SIGINT or SIGHUP, it stops CMD as above, then resigns, so
that another candidate takes over at once instead of waiting for the TTL to expire, and exits
128+N. A second signal skips the rest of the grace period. If kvop dies without resigning
(SIGKILL, a crash), its leadership ends within the TTL (see the store's TTL bound).

The key holds the leader's --id while it leads: "kvop get KEY" names the leader.`

const electExample = `  # Run a singleton job on one of several hosts:
  kvop --backend etcd --endpoints 10.0.0.1:2379 elect --key jobs/reindex -- ./reindex.sh

  # Fence writes with the term:
  kvop elect --key db/primary --id "$(hostname)" -- sh -c 'exec app --fencing-token "$KVOP_LEADER_TERM"'`

func (a *app) electCommand() *cobra.Command {
	var (
		e   election
		key string
	)
	cmd := &cobra.Command{
		Use:     "elect --key KEY [flags] -- CMD [ARG...]",
		Short:   "Run a command only while leading an election",
		Long:    electLong,
		Example: electExample,
		Args:    args(cobra.MinimumNArgs(1)),
		RunE: a.run(func(_ *cobra.Command, argv []string) error {
			if key == "" {
				return usageErrorf("--key is required")
			}
			if e.ttl <= 0 {
				return usageErrorf("--ttl must be positive, got %s", e.ttl)
			}
			if e.grace < 0 {
				return usageErrorf("--grace must not be negative, got %s", e.grace)
			}
			if e.id == "" {
				e.id = defaultID()
			}
			full, rel, err := a.key(key)
			if err != nil {
				return err
			}
			e.a, e.argv, e.key, e.rel = a, argv, full, rel
			store, err := a.openLongRunning()
			if err != nil {
				return err
			}
			defer store.Close()
			e.cand = leadership.NewCandidate(store, full, e.id, e.ttl)

			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(sigs)
			return e.run(sigs)
		}),
	}
	// Everything after CMD belongs to CMD, even without "--": "kvop elect --key k sh -c x".
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&key, "key", "", "the election's key (required); it holds the leader's ID")
	cmd.Flags().StringVar(&e.id, "id", "", "this candidate's name, unique among the candidates (default: HOSTNAME-PID)")
	cmd.Flags().DurationVar(&e.ttl, "ttl", 15*time.Second, "how long the leadership of a kvop that died without resigning lasts")
	cmd.Flags().DurationVar(&e.grace, "grace", 10*time.Second, "how long CMD may take to exit after SIGTERM before it gets SIGKILL")
	cmd.Flags().BoolVarP(&e.verbose, "verbose", "v", false, "report elections, losses and CMD's exits on stderr")
	return cmd
}

// defaultID is unique per process on one host, and says where the leader runs.
func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kvop"
	}
	return host + "-" + strconv.Itoa(os.Getpid())
}

// election runs CMD while its candidate leads.
type election struct {
	a       *app
	cand    *leadership.Candidate
	argv    []string
	key     string // in the store
	rel     string // as the user wrote it
	id      string
	ttl     time.Duration
	grace   time.Duration
	verbose bool
}

// run campaigns, starts and stops CMD as leadership comes and goes, and returns how kvop
// ends (an *exitError; nil for exit 0). It returns only after CMD is gone and the campaign has
// ended, which releases leadership — in that order, so that the next leader's CMD never runs
// alongside this one's.
func (e *election) run(sigs <-chan os.Signal) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	elected, errs := e.cand.RunForElection(ctx)

	var (
		proc    *child // CMD, running or being stopped
		restart bool   // re-elected while the previous CMD is still stopping
		ending  bool
		result  error
	)
	// end starts the way out: stop CMD if it runs, else give up leadership right away.
	end := func(err error) {
		if ending {
			return
		}
		ending, result = true, err
		if proc != nil {
			proc.stop(e.grace)
		} else {
			cancel()
		}
	}
	start := func() {
		term := e.cand.Term()
		if term == 0 {
			return // lost again already; the "false" is on its way
		}
		e.logf("leader of %q as %q (term %d): starting %s", e.rel, e.id, term, e.argv[0])
		p, err := startChild(e.argv, e.childEnv(term), e.a)
		if err != nil {
			code := 126
			if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
				code = 127
			}
			end(&exitError{code, fmt.Sprintf("elect: cannot start %s: %v", e.argv[0], err)})
			return
		}
		proc = p
	}

	for elected != nil || errs != nil || proc != nil {
		var procDone <-chan struct{}
		if proc != nil {
			procDone = proc.done
		}
		select {
		case sig := <-sigs:
			if ending {
				if proc != nil {
					proc.kill() // asked twice: do not wait out the grace period
				}
				continue
			}
			e.logf("%s: stopping", sig)
			end(&exitError{128 + signalNumber(sig), ""})

		case <-procDone:
			stopped, code := proc.stopped(), proc.exitCode()
			proc = nil
			switch {
			case ending:
				e.logf("%s stopped; resigning", e.argv[0])
				cancel() // CMD is gone: now leadership can go
			case !stopped:
				e.logf("%s exited with code %d; resigning", e.argv[0], code)
				end(exitCode(code))
			case restart:
				restart = false
				if e.cand.IsLeader() {
					start()
				}
			}

		case leader, ok := <-elected:
			switch {
			case !ok:
				elected = nil
				if !ending {
					// The campaign ended on its own: its last error says why.
					var last error
					for err := range errs {
						last = err
					}
					errs = nil
					end(&exitError{ExitFailure, "elect: campaign ended: " + describeCampaignError(e.a, last)})
				}
			case ending:
			case leader && proc == nil:
				start()
			case leader:
				restart = true // after the old CMD is gone
			default:
				restart = false
				if proc != nil {
					e.logf("lost leadership of %q: stopping %s", e.rel, e.argv[0])
					proc.stop(e.grace)
				}
			}

		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if !ending && err != nil {
				// Transient: the campaign retries. Say so, since it may be why nothing runs.
				fmt.Fprintf(e.a.stderr, "kvop: elect: %s (retrying)\n", describeCampaignError(e.a, err))
			}
		}
	}
	return result
}

// exitCode is the *exitError of a code, nil for 0.
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code, ""}
}

func describeCampaignError(a *app, err error) string {
	if err == nil {
		return "no reason given"
	}
	var ee *exitError
	if errors.As(a.storeError("campaign", err), &ee) {
		return ee.msg
	}
	return cause(err)
}

func (e *election) childEnv(term uint64) []string {
	return append(os.Environ(),
		envLeaderTerm+"="+strconv.FormatUint(term, 10),
		envLeaderKey+"="+e.key,
		envLeaderID+"="+e.id,
	)
}

func (e *election) logf(format string, args ...any) {
	if e.verbose {
		fmt.Fprintf(e.a.stderr, "kvop: elect: "+format+"\n", args...)
	}
}
