package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kvop/kvop/pkg/kvstore"
)

// Exit codes. `kvop elect` also exits with its command's code, 126 or 127 when the command
// cannot be started (as a shell does), and 128+N after signal N.
const (
	ExitOK          = 0
	ExitFailure     = 1 // the store failed or could not be reached, a file is unreadable, ...
	ExitUsage       = 2 // bad flags, arguments or values
	ExitKeyNotFound = 3 // get of a key that is absent
)

// usageError is a mistake in the command line: exit 2, with a pointer to --help.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitError ends kvop with code, after printing "kvop: msg" unless msg is empty.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// storeError turns an error of a store operation into the line kvop prints and its exit code.
// what names the operation ("get \"a/b\""). Unreachable stores are named with where and how
// long kvop tried, since that is what the user has to check.
func (a *app) storeError(what string, err error) error {
	s := a.settings
	switch {
	case errors.Is(err, kvstore.ErrNotReachable):
		msg := fmt.Sprintf("cannot reach %s at %s within %s", s.Backend, s.Endpoints(), s.Timeout)
		if why := cause(err); !uninformative(why) {
			msg += ": " + why
		}
		return &exitError{ExitFailure, msg}
	case errors.Is(err, kvstore.ErrKeyNotFound):
		return &exitError{ExitKeyNotFound, what + ": key not found"}
	case errors.Is(err, kvstore.ErrInvalidKey):
		return &exitError{ExitUsage, what + ": " + cause(err)}
	case errors.Is(err, kvstore.ErrAuthFailed):
		return &exitError{ExitFailure, fmt.Sprintf("%s: %s (check --username/--password, --token or the TLS client certificate)",
			what, cause(err))}
	case errors.Is(err, context.DeadlineExceeded):
		return &exitError{ExitFailure, fmt.Sprintf("%s: no answer from %s at %s within %s",
			what, s.Backend, s.Endpoints(), s.Timeout)}
	}
	return &exitError{ExitFailure, what + ": " + cause(err)}
}

// cause is the reason an error gives, without the "kvstore <backend>: <op> <key>:" context
// that kvop's own message already states, on one line.
func cause(err error) string {
	var ke *kvstore.Error
	if errors.As(err, &ke) && ke.Err != nil {
		err = ke.Err
	}
	return oneLine(err.Error())
}

// uninformative reports a cause that only repeats "cannot reach ... within ...".
func uninformative(why string) bool {
	why = strings.TrimPrefix(why, kvstore.ErrNotReachable.Error())
	why = strings.TrimPrefix(why, ": ")
	return why == "" || why == context.DeadlineExceeded.Error()
}

// oneLine folds a multi-line message (some client libraries return those) into one line.
func oneLine(s string) string {
	var parts []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			parts = append(parts, line)
		}
	}
	return strings.Join(parts, "; ")
}
