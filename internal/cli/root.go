// Package cli is the kvop command line: the cobra commands behind cmd/kvop, in a package of
// their own so that their parsing can be unit-tested and fuzzed without building the binary.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/kvop/kvop/pkg/kvstore"
	_ "github.com/kvop/kvop/pkg/kvstore/all" // every backend, so that --backend can name each
)

// app is one run of kvop: its streams, environment and global flags.
type app struct {
	version string
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	getenv  func(string) string

	global      *pflag.FlagSet
	globalNames []string
	opts        Options
	settings    *Settings // set by resolve
}

// Main runs kvop on the process's arguments and streams and returns its exit code.
func Main(version string) int {
	return Run(version, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
}

// Run runs kvop with args (without the program name) and returns its exit code. Whatever
// fails, it prints one "kvop: ..." line on stderr and never panics out: a bug becomes exit 1
// with a message rather than a stack trace.
func Run(version string, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) (code int) {
	a := &app{version: version, stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "kvop: internal error: %v\n", r)
			code = ExitFailure
		}
	}()
	root := a.newRoot()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	return a.report(cmd, err)
}

// report prints err and picks the exit code. Errors of a command's own work come as
// *exitError; anything else comes from cobra or flag parsing, so it is a usage error.
func (a *app) report(cmd *cobra.Command, err error) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(a.stderr, "kvop: %s\n", oneLine(ee.msg))
		}
		return ee.code
	}
	path := "kvop"
	if cmd != nil {
		path = cmd.CommandPath()
	}
	fmt.Fprintf(a.stderr, "kvop: %s\nRun '%s --help' for usage.\n", oneLine(err.Error()), path)
	return ExitUsage
}

// run adapts a command's function: its usage errors stay usage errors (exit 2), and any other
// error is a failure (exit 1) unless it already carries its exit code.
func (a *app) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ue usageError
		var ee *exitError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ee):
			return ee
		case errors.As(err, &ue):
			return ue
		}
		return &exitError{ExitFailure, err.Error()}
	}
}

// args wraps a cobra positional-argument check so that its complaint is a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

const rootLong = `kvop reads and writes keys, runs a command only while it leads an election, and registers
service endpoints — on Consul, etcd (v3 API, and the v2 API of older servers), ZooKeeper, or an
embedded BoltDB file (the default, for trying things out on one machine).

Every global flag can also be set by an environment variable, named after it: --backend is
KVOP_BACKEND, --ca-file is KVOP_CA_FILE, and so on (an empty variable counts as unset). A flag
on the command line wins over its variable. Prefer KVOP_PASSWORD and KVOP_TOKEN to the flags,
which other users can see in the process list.

Keys are paths: "/a/b/", "a/b" and "/a/b" are the same key, on every backend. With --prefix P,
every KEY, DIR and service is below P, and keys are printed relative to it.

A BoltDB file can be open in only one process at a time: while "kvop watch", "kvop elect" or
"kvop register" holds it, other kvop commands on it fail with "cannot reach".

Exit codes:
  0    success
  1    failure: the store is unreachable or refused, a file cannot be read, ...
  2    usage: bad flags, arguments or values
  3    key not found (kvop get)
  elect also exits with its command's exit code, 126/127 when the command cannot be started,
  and 128+N when kvop was stopped by signal N.`

const rootExample = `  # A local BoltDB file (kvop.db in the current directory):
  kvop put config/color blue
  kvop get config/color

  # etcd over mutual TLS:
  export KVOP_BACKEND=etcd KVOP_ENDPOINTS=10.0.0.1:2379,10.0.0.2:2379
  export KVOP_CA_FILE=ca.pem KVOP_CERT_FILE=client.pem KVOP_KEY_FILE=client-key.pem
  kvop ls config -l

  # Run a singleton job on whichever host wins the election:
  kvop --backend consul elect --key jobs/reindex -- ./reindex.sh`

func (a *app) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "kvop",
		Short:         "Keys, leader election and service discovery on Consul, etcd, ZooKeeper and BoltDB",
		Long:          rootLong,
		Example:       rootExample,
		Version:       a.version,
		SilenceErrors: true, // report prints errors: one line, and the right exit code
		SilenceUsage:  true,
	}
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.SetVersionTemplate("kvop {{.Version}}\n")

	// --version without cobra's -v shorthand: -v is --verbose where a command has one.
	root.Flags().Bool("version", false, "print kvop's version")

	a.global = root.PersistentFlags()
	a.globalNames = addGlobalFlags(a.global, &a.opts)

	root.AddCommand(
		a.getCommand(), a.putCommand(), a.rmCommand(), a.lsCommand(), a.watchCommand(),
		a.electCommand(),
		a.registerCommand(), a.servicesCommand(),
		a.versionCommand(),
	)
	return root
}

// resolve validates the global flags (and their variables) once a command needs a store;
// commands that do not (version, help) work whatever the environment holds.
func (a *app) resolve() (*Settings, error) {
	if a.settings != nil {
		return a.settings, nil
	}
	if err := applyEnv(a.global, a.globalNames, a.getenv); err != nil {
		return nil, err
	}
	s, err := a.opts.Resolve()
	if err != nil {
		return nil, err
	}
	a.settings = s
	return s, nil
}

// open resolves the settings and opens the store, within ctx.
func (a *app) open(ctx context.Context) (kvstore.Store, error) {
	s, err := a.resolve()
	if err != nil {
		return nil, err
	}
	store, err := kvstore.New(ctx, s.Backend, s.Addrs, s.Config)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, kvstore.ErrNotReachable) {
			// New gave up on our deadline before the backend's own: the same thing to the user.
			err = kvstore.Mark(kvstore.ErrNotReachable, err)
		}
		return nil, a.storeError("open "+string(s.Backend), err)
	}
	return store, nil
}

// oneShot runs fn with a store and a deadline of --timeout for the whole command.
func (a *app) oneShot(fn func(ctx context.Context, store kvstore.Store) error) error {
	s, err := a.resolve()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	store, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(ctx, store)
}
