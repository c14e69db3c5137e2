package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Output formats of the read commands.
const (
	outputPlain = "plain"
	outputJSON  = "json"
	outputRaw   = "raw" // get only: the value's bytes exactly
)

// addOutputFlag defines -o/--output with the formats a command supports (the first is the default).
func addOutputFlag(cmd *cobra.Command, dst *string, formats ...string) {
	cmd.Flags().StringVarP(dst, "output", "o", formats[0], "output format: "+strings.Join(formats, ", "))
}

func checkOutput(value string, formats ...string) error {
	if slices.Contains(formats, value) {
		return nil
	}
	return usageErrorf("--output %q: want one of %s", value, strings.Join(formats, ", "))
}

// pairJSON is a key/value pair as -o json prints it. Value is the value as a string when it is
// valid UTF-8 (JSON cannot carry other bytes); otherwise it is base64 and Encoding says so,
// so that a reader never has to guess.
type pairJSON struct {
	Key       string `json:"key"`
	Value     string `json:"value"`
	Encoding  string `json:"encoding,omitempty"` // "base64", or omitted for UTF-8 text
	LastIndex uint64 `json:"lastIndex"`
}

func toPairJSON(key string, p *kvstore.KVPair) pairJSON {
	out := pairJSON{Key: key, LastIndex: p.LastIndex}
	if utf8.Valid(p.Value) {
		out.Value = string(p.Value)
	} else {
		out.Value = base64.StdEncoding.EncodeToString(p.Value)
		out.Encoding = "base64"
	}
	return out
}

// decodeValue is the inverse of toPairJSON's value encoding (for tests and scripts in Go).
func decodeValue(p pairJSON) ([]byte, error) {
	if p.Encoding == "base64" {
		return base64.StdEncoding.DecodeString(p.Value)
	}
	return []byte(p.Value), nil
}

// writeJSON writes v as one line, so that a stream of events is one JSON document per line.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// displayValue is a value as plain output shows it on one line: as it is when it is printable
// UTF-8, otherwise Go-quoted (also when it starts with a quote, so that quoting is never
// ambiguous). -o json gives the exact bytes.
func displayValue(v []byte) string {
	if !utf8.Valid(v) || (len(v) > 0 && v[0] == '"') {
		return strconv.Quote(string(v))
	}
	for _, r := range string(v) {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return strconv.Quote(string(v))
		}
	}
	return string(v)
}

// deleted is what plain output prints for an absent key.
const deleted = "<deleted>"

// writeKeyValue writes one "key<TAB>value" line.
func writeKeyValue(w io.Writer, key string, value []byte) error {
	_, err := fmt.Fprintf(w, "%s\t%s\n", key, displayValue(value))
	return err
}
