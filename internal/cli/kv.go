package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvop/kvop/pkg/kvstore"
)

// key returns the store key of a KEY argument (below --prefix) and its normalised form
// relative to the prefix, which is how kvop names it in output and messages.
func (a *app) key(arg string) (full, rel string, err error) {
	s, err := a.resolve()
	if err != nil {
		return "", "", err
	}
	rel, err = kvstore.NormalizeKey(arg)
	if err != nil {
		return "", "", usageErrorf("KEY %q: %v", arg, err)
	}
	if s.Prefix == "" {
		return rel, rel, nil
	}
	return s.Prefix + "/" + rel, rel, nil
}

// dir returns the store directory of an optional DIR argument: the prefix itself when DIR is
// not given.
func (a *app) dir(argv []string) (full, rel string, err error) {
	if len(argv) > 0 {
		return a.key(argv[0])
	}
	s, err := a.resolve()
	if err != nil {
		return "", "", err
	}
	if s.Prefix == "" {
		// No backend can list its root: ZooKeeper's holds its own nodes, Consul's is not a key.
		return "", "", usageErrorf("give a DIR, or set --prefix (the whole store cannot be listed)")
	}
	return s.Prefix, "", nil
}

// relKey names a store key relative to --prefix.
func (a *app) relKey(full string) string {
	if p := a.settings.Prefix; p != "" {
		return strings.TrimPrefix(full, p+"/")
	}
	return full
}

func (a *app) getCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of a key",
		Long: `Print the value of a key.

Output formats:
  plain  the value and a newline
  raw    the value's bytes exactly, nothing added (for binary values and files)
  json   {"key": KEY, "value": VALUE, "lastIndex": N}; VALUE is the value as a string when it is
         valid UTF-8, otherwise its base64 and the object has "encoding": "base64".
         lastIndex changes with every write of the key.

A key that does not exist is exit code 3 with "key not found".`,
		Example: `  kvop get config/color
  kvop get -o raw certs/ca.pem > ca.pem
  kvop get -o json config/color | jq -r .value`,
		Args: args(cobra.ExactArgs(1)),
		RunE: a.run(func(_ *cobra.Command, argv []string) error {
			if err := checkOutput(output, outputPlain, outputJSON, outputRaw); err != nil {
				return err
			}
			key, rel, err := a.key(argv[0])
			if err != nil {
				return err
			}
			return a.oneShot(func(ctx context.Context, store kvstore.Store) error {
				pair, err := store.Get(ctx, key)
				if err != nil {
					return a.storeError(fmt.Sprintf("get %q", rel), err)
				}
				switch output {
				case outputJSON:
					return writeJSON(a.stdout, toPairJSON(rel, pair))
				case outputRaw:
					_, err = a.stdout.Write(pair.Value)
				default:
					_, err = fmt.Fprintf(a.stdout, "%s\n", pair.Value)
				}
				return err
			})
		}),
	}
	addOutputFlag(cmd, &output, outputPlain, outputJSON, outputRaw)
	return cmd
}

func (a *app) putCommand() *cobra.Command {
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Write a key (VALUE - reads standard input)",
		Long: `Write VALUE at KEY, creating or replacing it. With VALUE "-" the value is standard input,
byte for byte.

With --ttl the key vanishes when it is not written again within the TTL (on Consul within up to
2 × max(TTL, the server's session_ttl_min), on ZooKeeper within TTL + session timeout). On
ZooKeeper a TTL key belongs to the session of the process that wrote it, so it vanishes as
soon as kvop exits: use "kvop register" to keep an entry alive.`,
		Example: `  kvop put config/color blue
  kvop put certs/ca.pem - < ca.pem
  kvop put offset -- -5          # "--" before a value that starts with "-"
  kvop put --ttl 30s locks/maintenance "$(hostname)"`,
		Args: args(cobra.ExactArgs(2)),
		RunE: a.run(func(_ *cobra.Command, argv []string) error {
			if ttl < 0 {
				return usageErrorf("--ttl must not be negative, got %s", ttl)
			}
			key, rel, err := a.key(argv[0])
			if err != nil {
				return err
			}
			value := []byte(argv[1])
			if argv[1] == "-" {
				if value, err = io.ReadAll(a.stdin); err != nil {
					return fmt.Errorf("put %q: reading standard input: %v", rel, err)
				}
			}
			return a.oneShot(func(ctx context.Context, store kvstore.Store) error {
				var opts *kvstore.WriteOptions
				if ttl > 0 {
					opts = &kvstore.WriteOptions{TTL: ttl}
				}
				if err := store.Put(ctx, key, value, opts); err != nil {
					return a.storeError(fmt.Sprintf("put %q", rel), err)
				}
				return nil
			})
		}),
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "delete the key when it is not written again within this time (0: never)")
	return cmd
}

func (a *app) rmCommand() *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use:     "rm KEY",
		Aliases: []string{"del", "delete"},
		Short:   "Delete a key (-r: and every key below it)",
		Long: `Delete KEY. With -r, also delete every key below it (KEY/...), at any depth.
Deleting a key that does not exist succeeds.`,
		Example: `  kvop rm config/color
  kvop rm -r config`,
		Args: args(cobra.ExactArgs(1)),
		RunE: a.run(func(_ *cobra.Command, argv []string) error {
			key, rel, err := a.key(argv[0])
			if err != nil {
				return err
			}
			return a.oneShot(func(ctx context.Context, store kvstore.Store) error {
				if recursive {
					if err := store.DeleteTree(ctx, key); err != nil {
						return a.storeError(fmt.Sprintf("rm -r %q", rel), err)
					}
				}
				if err := store.Delete(ctx, key); err != nil {
					return a.storeError(fmt.Sprintf("rm %q", rel), err)
				}
				return nil
			})
		}),
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "also delete every key below KEY")
	return cmd
}

func (a *app) lsCommand() *cobra.Command {
	var (
		output string
		long   bool
	)
	cmd := &cobra.Command{
		Use:     "ls [DIR]",
		Aliases: []string{"list"},
		Short:   "List the keys below a directory",
		Long: `List every key below DIR (or below --prefix when DIR is not given), at any depth, sorted.
DIR itself is not listed, even when it holds a value. An empty or absent directory lists
nothing and succeeds.

Output formats:
  plain  one key per line; with -l, "KEY<TAB>VALUE" — a value that is not printable UTF-8 on
         one line (or that starts with a double quote) is printed Go-quoted
  json   an array of {"key", "value", "lastIndex"} objects, as "kvop get -o json" prints them`,
		Example: `  kvop ls config
  kvop ls -l config
  kvop --prefix apps/web ls -o json`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: a.run(func(_ *cobra.Command, argv []string) error {
			if err := checkOutput(output, outputPlain, outputJSON); err != nil {
				return err
			}
			dir, rel, err := a.dir(argv)
			if err != nil {
				return err
			}
			return a.oneShot(func(ctx context.Context, store kvstore.Store) error {
				pairs, err := store.List(ctx, dir)
				if err != nil && !errors.Is(err, kvstore.ErrKeyNotFound) {
					return a.storeError(fmt.Sprintf("ls %q", rel), err)
				}
				return a.printList(pairs, output, long)
			})
		}),
	}
	addOutputFlag(cmd, &output, outputPlain, outputJSON)
	cmd.Flags().BoolVarP(&long, "long", "l", false, "plain output: print each key's value after a tab")
	return cmd
}

func (a *app) printList(pairs []*kvstore.KVPair, output string, long bool) error {
	if output == outputJSON {
		out := make([]pairJSON, 0, len(pairs)) // [] rather than null when empty
		for _, p := range pairs {
			out = append(out, toPairJSON(a.relKey(p.Key), p))
		}
		return writeJSON(a.stdout, out)
	}
	for _, p := range pairs {
		var err error
		if long {
			err = writeKeyValue(a.stdout, a.relKey(p.Key), p.Value)
		} else {
			_, err = fmt.Fprintln(a.stdout, a.relKey(p.Key))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
