// Package retry has the capped exponential backoff with jitter that kvop's long-running loops
// (campaigns, followers, keep-alives) use between attempts against a store.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields growing delays: Min, then doubling up to Max, each with ±20% jitter so that
// many clients that lost one server do not come back in lockstep. The zero value is usable
// (100 ms to 5 s). Not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(5*time.Second, lo)
	}
	if b.next < lo {
		b.next = lo
	}
	d := b.next
	b.next = min(2*b.next, hi)
	jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
	return d + jitter
}

// Reset starts the delays from Min again, after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Sleep waits d or until ctx is done; it reports whether the full delay passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
