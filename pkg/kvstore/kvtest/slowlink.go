package kvtest

import (
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowLink is a TCP proxy in front of one server whose answers arrive late: what the client
// sends reaches the server at once, what the server sends back is held for delay. With it a
// client can give up on a request that the server has already applied, on purpose.
type slowLink struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// serverAddr returns the "host:port" of a server address ("host:port", or a URL with a
// host), and false when addr names no server (a BoltDB file, an in-memory namespace).
func serverAddr(addr string) (string, bool) {
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", false
		}
		addr = u.Host
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return "", false
	}
	_, err = strconv.ParseUint(port, 10, 16)
	return addr, err == nil
}

// newSlowLink starts a slow link to addr ("host:port", or a URL with a host) and returns it
// with the address clients should use instead (the same form as addr). It stops when the
// test ends.
func newSlowLink(t testing.TB, addr string, delay time.Duration) (*slowLink, string) {
	t.Helper()
	target, ok := serverAddr(addr)
	if !ok {
		t.Fatalf("slow link: %q is not a server address", addr)
	}
	rewrite := func(hostPort string) string { return hostPort }
	if u, err := url.Parse(addr); err == nil && strings.Contains(addr, "://") {
		rewrite = func(hostPort string) string { v := *u; v.Host = hostPort; return v.String() }
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("slow link: %v", err)
	}
	l := &slowLink{ln: ln, target: target, delay: delay}
	l.wg.Go(l.accept)
	t.Cleanup(l.close)
	return l, rewrite(ln.Addr().String())
}

func (l *slowLink) accept() {
	for {
		client, err := l.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", l.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			_, _ = client.Close(), server.Close()
			return
		}
		l.conns = append(l.conns, client, server)
		l.mu.Unlock()
		l.wg.Go(func() { _, _ = io.Copy(server, client); _ = server.Close() })
		l.wg.Go(func() { l.late(client, server); _ = client.Close() })
	}
}

// late copies what server sends to client, each chunk delay after it was read.
func (l *slowLink) late(client, server net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	chunks := make(chan chunk, 1024)
	l.wg.Go(func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := server.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now().Add(l.delay)}
			}
			if err != nil {
				return
			}
		}
	})
	for c := range chunks {
		time.Sleep(time.Until(c.at))
		if _, err := client.Write(c.b); err != nil {
			_ = server.Close()
			for range chunks { // let the reader finish
			}
			return
		}
	}
}

func (l *slowLink) close() {
	_ = l.ln.Close()
	l.mu.Lock()
	l.closed = true
	for _, c := range l.conns {
		_ = c.Close()
	}
	l.mu.Unlock()
	l.wg.Wait()
}
