package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kvop/kvop/pkg/discovery"
	"github.com/kvop/kvop/pkg/kvstore"
)

func (a *app) registerCommand() *cobra.Command {
	var (
		entry   discovery.Entry
		meta    []string
		ttl     time.Duration
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "register --service S --address A --port P [flags]",
		Short: "Register a service endpoint until interrupted",
		Long: `Register an endpoint of a service and keep it registered until kvop gets SIGINT (Ctrl-C) or
SIGTERM; then deregister it and exit 0.

The entry is JSON at <prefix>/services/<service>/<address>:<port>, written with --ttl and kept
alive by kvop: if kvop dies without deregistering, the entry vanishes within the TTL (the
store's TTL bound). If it vanishes while kvop runs (a long store outage), kvop writes it again.
"kvop services" lists the entries.`,
		Example: `  kvop register --service web --address 10.0.0.7 --port 8080 --meta zone=eu-1 --meta version=1.4
  kvop --backend consul --prefix prod register --service db --address db-1.internal --port 5432 --ttl 30s`,
		Args: args(cobra.NoArgs),
		RunE: a.run(func(_ *cobra.Command, _ []string) error {
			if ttl <= 0 {
				return usageErrorf("--ttl must be positive, got %s", ttl)
			}
			md, err := parseMeta(meta)
			if err != nil {
				return err
			}
			entry.Metadata = md
			if err := entry.Validate(); err != nil {
				return usageError{err}
			}
			store, err := a.openLongRunning()
			if err != nil {
				return err
			}
			defer store.Close()
			reg := discovery.NewRegistry(store, a.settings.Prefix)
			what := fmt.Sprintf("register %s at %s", entry.Service, entry.Endpoint())

			// Register once within --timeout, so that a store that refuses says so at once;
			// Keep then holds the entry (writing it again, which is harmless).
			rctx, cancel := context.WithTimeout(context.Background(), a.settings.Timeout)
			err = reg.Register(rctx, entry, ttl)
			cancel()
			if err != nil {
				return a.storeError(what, err)
			}
			if verbose {
				fmt.Fprintf(a.stderr, "kvop: registered %s at %s (key %s)\n", entry.Service, entry.Endpoint(), reg.Key(entry))
			}

			ctx, stop := interruptible()
			defer stop()
			if err := reg.Keep(ctx, entry, ttl); err != nil {
				return a.storeError(what, err)
			}
			if verbose {
				fmt.Fprintf(a.stderr, "kvop: deregistered %s at %s\n", entry.Service, entry.Endpoint())
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&entry.Service, "service", "", "service name (required; one key segment)")
	f.StringVar(&entry.Address, "address", "", "the endpoint's host name or IP address (required)")
	f.IntVar(&entry.Port, "port", 0, "the endpoint's port, 1..65535 (required)")
	f.StringArrayVar(&meta, "meta", nil, "metadata as key=value (repeat the flag for more)")
	f.StringVar(&entry.Owner, "owner", "", "who registered the entry (recorded with it)")
	f.StringVar(&entry.Node, "node", "", "the node the endpoint runs on (recorded with it)")
	f.DurationVar(&ttl, "ttl", 15*time.Second, "how long the entry outlives a kvop that died without deregistering")
	f.BoolVarP(&verbose, "verbose", "v", false, "report registration and deregistration on stderr")
	for _, name := range []string{"service", "address", "port"} {
		_ = cmd.MarkFlagRequired(name) // cannot fail: the flags exist
	}
	return cmd
}

// parseMeta turns repeated key=value flags into a map; a key given twice is a mistake.
func parseMeta(items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	md := make(map[string]string, len(items))
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--meta %q: want key=value", item)
		}
		if _, dup := md[k]; dup {
			return nil, usageErrorf("--meta: key %q given twice", k)
		}
		md[k] = v
	}
	return md, nil
}

func (a *app) servicesCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "services [SERVICE]",
		Short: "List registered service endpoints",
		Long: `List the registered endpoints of SERVICE, or of every service, sorted by service and endpoint.

Output formats:
  plain  a table: SERVICE, ENDPOINT, OWNER, NODE, METADATA
  json   an array of entries as they are stored:
         {"service", "address", "port", "metadata", "owner", ...}`,
		Example: `  kvop services
  kvop services web -o json | jq -r '.[] | "\(.address):\(.port)"'`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: a.run(func(_ *cobra.Command, argv []string) error {
			if err := checkOutput(output, outputPlain, outputJSON); err != nil {
				return err
			}
			if len(argv) == 1 {
				if err := (discovery.Entry{Service: argv[0], Address: "x", Port: 1}).Validate(); err != nil {
					return usageError{err}
				}
			}
			return a.oneShot(func(ctx context.Context, store kvstore.Store) error {
				reg := discovery.NewRegistry(store, a.settings.Prefix)
				var (
					entries []discovery.Entry
					err     error
				)
				if len(argv) == 1 {
					entries, err = reg.Entries(ctx, argv[0])
				} else {
					var keyed []discovery.Keyed
					keyed, err = reg.All(ctx)
					for _, k := range keyed {
						entries = append(entries, k.Entry)
					}
				}
				if err != nil {
					return a.storeError("services", err)
				}
				return a.printEntries(entries, output)
			})
		}),
	}
	addOutputFlag(cmd, &output, outputPlain, outputJSON)
	return cmd
}

func (a *app) printEntries(entries []discovery.Entry, output string) error {
	if output == outputJSON {
		if entries == nil {
			entries = []discovery.Entry{} // [] rather than null
		}
		return writeJSON(a.stdout, entries)
	}
	if len(entries) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tENDPOINT\tOWNER\tNODE\tMETADATA")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Service, e.Endpoint(), dash(e.Owner), dash(e.Node), formatMeta(e.Metadata))
	}
	return tw.Flush()
}

// formatMeta prints metadata as sorted k=v pairs, quoting what would break the table.
func formatMeta(md map[string]string) string {
	if len(md) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := md[k]
		if strings.ContainsAny(v, " \t\n,\"") || displayValue([]byte(v)) != v {
			v = strconv.Quote(v)
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, ",")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
