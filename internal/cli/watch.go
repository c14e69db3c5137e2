package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kvop/kvop/pkg/kvstore"
)

// interruptible returns a context that ends on SIGINT or SIGTERM: how the long-running
// commands (watch, register) are told to finish cleanly.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// openLongRunning opens the store within --timeout for a command that then runs until ctx ends.
func (a *app) openLongRunning() (kvstore.Store, error) {
	s, err := a.resolve()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	return a.open(ctx)
}

func (a *app) watchCommand() *cobra.Command {
	var (
		output string
		tree   bool
	)
	cmd := &cobra.Command{
		Use:   "watch KEY",
		Short: "Print a key's value now and after every change, until interrupted",
		Long: `Print the current value of KEY, then its value after every change, until kvop gets SIGINT
(Ctrl-C) or SIGTERM; then it exits 0. Rapid changes may be merged, but the latest value is
never missed.

Output formats, one line per event:
  plain  the value (Go-quoted when it is not printable UTF-8 on one line), or <deleted>
  json   the object "kvop get -o json" prints, or null when the key is absent

With --tree, KEY is a directory and each event covers every key below it:
  plain  the keys that changed, as "KEY<TAB>VALUE", or "KEY<TAB><deleted>"; the first event
         lists every key present
  json   the full list below the directory, as "kvop ls -o json" prints it`,
		Example: `  kvop watch config/color
  kvop watch --tree -o json config`,
		Args: args(cobra.ExactArgs(1)),
		RunE: a.run(func(_ *cobra.Command, argv []string) error {
			if err := checkOutput(output, outputPlain, outputJSON); err != nil {
				return err
			}
			key, rel, err := a.key(argv[0])
			if err != nil {
				return err
			}
			store, err := a.openLongRunning()
			if err != nil {
				return err
			}
			defer store.Close()
			ctx, stop := interruptible()
			defer stop()
			if tree {
				err = a.watchTree(ctx, store, key, rel, output)
			} else {
				err = a.watchKey(ctx, store, key, rel, output)
			}
			if err != nil || ctx.Err() != nil {
				return err
			}
			// The store closed the watch although nobody asked it to.
			return &exitError{ExitFailure, fmt.Sprintf("watch %q: the store ended the watch", rel)}
		}),
	}
	addOutputFlag(cmd, &output, outputPlain, outputJSON)
	cmd.Flags().BoolVar(&tree, "tree", false, "watch every key below KEY instead of KEY")
	return cmd
}

// watchKey prints the events of one key until the watch ends.
func (a *app) watchKey(ctx context.Context, store kvstore.Store, key, rel, output string) error {
	events, err := store.Watch(ctx, key)
	if err != nil {
		return a.storeError(fmt.Sprintf("watch %q", rel), err)
	}
	for pair := range events {
		switch {
		case output == outputJSON && pair == nil:
			err = writeJSON(a.stdout, nil)
		case output == outputJSON:
			err = writeJSON(a.stdout, toPairJSON(rel, pair))
		case pair == nil:
			_, err = fmt.Fprintln(a.stdout, deleted)
		default:
			_, err = fmt.Fprintln(a.stdout, displayValue(pair.Value))
		}
		if err != nil {
			return err // stdout is gone (a closed pipe): nobody is listening any more
		}
	}
	return nil
}

// watchTree prints the events of a directory until the watch ends.
func (a *app) watchTree(ctx context.Context, store kvstore.Store, dir, rel, output string) error {
	events, err := store.WatchTree(ctx, dir)
	if err != nil {
		return a.storeError(fmt.Sprintf("watch --tree %q", rel), err)
	}
	var last []*kvstore.KVPair
	for pairs := range events {
		if output == outputJSON {
			err = a.printList(pairs, outputJSON, false)
		} else {
			err = a.printChanges(last, pairs)
		}
		if err != nil {
			return err
		}
		last = pairs
	}
	return nil
}

// printChanges prints what differs between two listings: new or changed keys with their
// value, then removed keys as <deleted>.
func (a *app) printChanges(before, after []*kvstore.KVPair) error {
	old := make(map[string]*kvstore.KVPair, len(before))
	for _, p := range before {
		old[p.Key] = p
	}
	for _, p := range after {
		prev, ok := old[p.Key]
		delete(old, p.Key)
		if ok && prev.LastIndex == p.LastIndex && bytes.Equal(prev.Value, p.Value) {
			continue
		}
		if err := writeKeyValue(a.stdout, a.relKey(p.Key), p.Value); err != nil {
			return err
		}
	}
	gone := make([]string, 0, len(old))
	for k := range old {
		gone = append(gone, k)
	}
	slices.Sort(gone)
	for _, k := range gone {
		if _, err := fmt.Fprintf(a.stdout, "%s\t%s\n", a.relKey(k), deleted); err != nil {
			return err
		}
	}
	return nil
}
