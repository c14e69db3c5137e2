package zookeeper

import (
	"errors"
	"time"

	"github.com/go-zookeeper/zk"
)

// monitorSession follows the session: locks held under a session that expired are lost, and
// keep-alive keys are created again in the new session. While the connection is down, the
// server may expire the session without the client hearing of it until it reconnects; a held
// lock is therefore given up (reported lost) once the connection has been down for a quarter of
// the session timeout — before the server can have handed the lock to anyone else.
func (s *Store) monitorSession() {
	session := s.conn.SessionID()
	grace := s.cfg.SessionTimeout / 4
	var downSince time.Time
	for {
		changed := s.stateChanged()
		state, id := s.conn.State(), s.conn.SessionID()
		switch {
		case state == zk.StateHasSession:
			downSince = time.Time{}
			if id != session {
				session = id
				s.locks.loseAll()
				s.spawn(s.recreateKeepAlive)
			}
		case state == zk.StateExpired:
			s.locks.loseAll()
			fallthrough
		default:
			if downSince.IsZero() {
				downSince = time.Now()
			}
		}
		var presumeLost <-chan time.Time
		var timer *time.Timer
		if !downSince.IsZero() {
			wait := time.Until(downSince.Add(grace))
			if wait <= 0 {
				s.locks.loseAll()
			} else {
				timer = time.NewTimer(wait)
				presumeLost = timer.C
			}
		}
		select {
		case <-changed:
		case <-presumeLost:
		case <-s.closed:
		}
		if timer != nil {
			timer.Stop()
		}
		if s.isClosed() {
			return
		}
	}
}

// transient reports whether err may go away by itself (connection trouble), so that a waiting
// operation should try again rather than fail.
func transient(err error) bool {
	return errors.Is(err, errTimeout) || errors.Is(err, zk.ErrConnectionClosed) ||
		errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrSessionExpired) ||
		errors.Is(err, zk.ErrSessionMoved) || errors.Is(err, zk.ErrClosing)
}
