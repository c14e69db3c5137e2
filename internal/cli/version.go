package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kvop's version",
		Long: `Print kvop's version, set when it is built:
  go build -ldflags "-X main.version=v1.2.3" ./cmd/kvop
("dev" when it was not), and the Go version and platform it was built for.`,
		Args: args(cobra.NoArgs),
		RunE: a.run(func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(a.stdout, "kvop %s (%s %s/%s)\n", a.version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		}),
	}
}
