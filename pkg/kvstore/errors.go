package kvstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Compare with errors.Is: stores wrap them with the backend, operation and key.
var (
	// ErrKeyNotFound: Get/List/AtomicPut(previous!=nil)/AtomicDelete on an absent key or empty directory.
	ErrKeyNotFound = errors.New("key not found")
	// ErrKeyExists: AtomicPut with previous == nil on a present key.
	ErrKeyExists = errors.New("key exists")
	// ErrKeyModified: AtomicPut/AtomicDelete whose previous.LastIndex is stale.
	ErrKeyModified = errors.New("key was modified")
	// ErrPreviousNotSpecified: AtomicDelete with previous == nil.
	ErrPreviousNotSpecified = errors.New("previous pair not specified")
	// ErrInvalidKey: an empty key, or a key the backend cannot store (the error says why).
	ErrInvalidKey = errors.New("invalid key")
	// ErrBackendNotSupported: New with an unregistered backend.
	ErrBackendNotSupported = errors.New("backend not supported")
	// ErrNotReachable: the backend could not be reached within ConnectionTimeout.
	ErrNotReachable = errors.New("backend not reachable")
	// ErrAuthFailed: the backend refused the credentials or the TLS identity.
	ErrAuthFailed = errors.New("authentication failed")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrNotLocked: Unlock of a lock that is not held.
	ErrNotLocked = errors.New("lock not held")
)

// Error is the error every store returns: what failed, where, and why. Err wraps the sentinel
// (if any) and the backend's own error.
type Error struct {
	Backend Backend
	Op      string // "get", "put", "watch", "lock", "open", ...
	Key     string // normalised key or directory; empty for store-wide operations
	Err     error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("kvstore %s: %s: %v", e.Backend, e.Op, e.Err)
	}
	return fmt.Sprintf("kvstore %s: %s %q: %v", e.Backend, e.Op, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err with the backend, operation and key as context; nil stays nil, and an error
// that is already an *Error is returned as it is (so context is never stacked twice).
func Wrap(backend Backend, op, key string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Backend: backend, Op: op, Key: key, Err: err}
}

// Mark returns an error that matches both sentinel (errors.Is) and cause, for backends that
// translate their client's error into one of the sentinels while keeping its text.
func Mark(sentinel, cause error) error {
	if cause == nil || errors.Is(cause, sentinel) {
		return sentinel
	}
	return fmt.Errorf("%w: %w", sentinel, cause)
}
