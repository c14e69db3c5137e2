package kvtest

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// leakGrace is how long goroutines of closed stores and cancelled watches may take to end.
const leakGrace = 10 * time.Second

// checkLeaks remembers the goroutines running now and, once every subtest has ended (and so
// closed every store it opened), fails t if goroutines started since are still running: a
// watch, keep-alive or lock goroutine that neither ctx nor Close ended. It is skipped when a
// subtest failed, since a failed subtest may leave its own goroutines behind.
func checkLeaks(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		opts := []goleak.Option{
			before,
			// Idle keep-alive connections of an HTTP client's pool (Consul, etcd v2) belong to
			// the transport, which may be shared and closes them after its idle timeout.
			goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
		}
		deadline := time.Now().Add(leakGrace)
		for {
			err := goleak.Find(opts...) // retries for about a second itself
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines started by the suite still run %v after every store was closed "+
					"and every watch cancelled:\n%v", leakGrace, err)
				return
			}
		}
	})
}
