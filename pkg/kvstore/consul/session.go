package consul

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/hashicorp/consul/api"
)

const (
	// defaultTTLFloor is Consul's default session_ttl_min, assumed until a server says otherwise.
	// Requests start from the caller's TTL: a server with a lower floor accepts it as it is.
	defaultTTLFloor = 10 * time.Second
	// maxSessionTTL is Consul's fixed upper limit for a session TTL.
	maxSessionTTL = 24 * time.Hour
	// lockDelay is the session's lock-delay. It must not be 0: consul/api leaves a zero
	// LockDelay out of the request and the server then applies its 15 s default, which would
	// keep a released or expired lock blocked for 15 s. 1 ms is the smallest it sends.
	lockDelay = time.Millisecond
)

// ttlRange matches the server's answer to a TTL outside its limits:
// "Invalid Session TTL '500000000', must be between [1s=24h0m0s]".
var ttlRange = regexp.MustCompile(`must be between \[([^=\]]+)=([^\]]+)\]`)

// sessionTTL is the TTL to ask for: at least the server's floor once known, at most 24h.
func (s *store) sessionTTL(ttl time.Duration) time.Duration {
	if floor := time.Duration(s.floor.Load()); ttl < floor {
		ttl = floor
	}
	return min(ttl, maxSessionTTL)
}

// createSession creates a TTL-only session (no health checks, so it lives exactly as long as
// it is renewed) whose keys are deleted when it ends. It returns the id and the TTL granted.
//
// A TTL below the server's session_ttl_min is refused; the refusal names the limits, so the
// store learns the floor, raises the TTL to it and retries once.
func (s *store) createSession(ctx context.Context, name string, ttl time.Duration) (string, time.Duration, error) {
	ttl = s.sessionTTL(ttl)
	for attempt := 0; ; attempt++ {
		var id string
		err := s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
			var err error
			id, _, err = c.Session().CreateNoChecks(&api.SessionEntry{
				Name:      name,
				TTL:       ttl.String(),
				Behavior:  api.SessionBehaviorDelete,
				LockDelay: lockDelay,
			}, writeOpts(ctx))
			return err
		})
		if err == nil {
			return id, ttl, nil
		}
		m := ttlRange.FindStringSubmatch(err.Error())
		if m == nil || attempt > 0 {
			return "", 0, err
		}
		floor, err1 := time.ParseDuration(m[1])
		if err1 != nil || floor <= 0 {
			floor = defaultTTLFloor
		}
		s.floor.Store(int64(floor))
		ttl = s.sessionTTL(ttl)
	}
}

// errSessionGone: a renewal found the session expired or destroyed.
var errSessionGone = errors.New("session expired or destroyed")

// errNotCaughtUp: a server answered that a session does not exist, but a consistent read
// found it; the answer came from a server that had not yet replayed its raft log.
var errNotCaughtUp = errors.New("server answered before catching up with its raft log")

// renewSession resets the session's TTL timer.
//
// A "no such session" answer is confirmed by a consistent read before it counts: a server
// that has just restarted and won an election answers renewals from its state store before it
// has replayed the raft log written since its last snapshot, so a live session can look gone
// for a moment. A consistent read waits for that replay (the server refuses it until then).
func (s *store) renewSession(ctx context.Context, id string) error {
	return s.call(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		entry, _, err := c.Session().Renew(id, writeOpts(ctx))
		if err != nil || entry != nil {
			return err
		}
		q := (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx)
		entry, _, err = c.Session().Info(id, q)
		switch {
		case err != nil:
			return err
		case entry != nil:
			return errNotCaughtUp
		}
		return errSessionGone
	})
}

// destroySession ends a session; the keys it holds are deleted with it (behavior "delete").
// It works after Close too, which is how Close releases locks.
func (s *store) destroySession(ctx context.Context, id string) error {
	return s.callRaw(ctx, true, s.cfg.ConnectionTimeout, func(ctx context.Context, c *api.Client) error {
		_, err := c.Session().Destroy(id, writeOpts(ctx))
		return err
	})
}

// renewLoop renews a session every ttl/2 until ctx is done or the server no longer knows the
// session (errSessionGone). With patience > 0 it also gives up, returning the last error, once
// no renewal has succeeded for that long: a lock holder must then count its lock as lost,
// because the server may expire the session from then on. With patience 0 (KeepAlive keys) it
// never gives up while the session may live: Consul keeps a session for 2 × TTL after its last
// renewal and a newly elected leader restarts every session's timer, so a renewal that
// succeeds after a long election still saves the key.
func (s *store) renewLoop(ctx context.Context, id string, ttl, patience time.Duration) error {
	lastOK := time.Now()
	wait := ttl / 2
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		err := s.renewSession(ctx, id)
		switch {
		case err == nil:
			lastOK, wait = time.Now(), ttl/2
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errSessionGone):
			return err
		case patience > 0 && time.Since(lastOK) >= patience:
			return err
		default:
			// No server answered: retry soon, and with patience never past the point where
			// the session could expire unnoticed.
			wait = min(time.Second, ttl/4)
			if patience > 0 {
				wait = min(wait, max(patience-time.Since(lastOK), time.Millisecond))
			}
		}
	}
}
