// Package transportguard owns the idle check of net/http's Transport on HTTP/1.1: it makes the
// Transport's keep-alive reuse safe against unsolicited responses (response-queue poisoning, SECURITY.md).
//
// The hole it closes: when an app writes bytes right behind a response (a second, unsolicited answer in the
// same segment), they sit in the Transport's read buffer when the response body ends. The Transport's read
// loop puts the connection back in its pool (or hands it straight to a waiting request) before it looks
// at that buffer again; a request that takes the connection in that window has the stale bytes read as its
// answer, and every later answer on the connection is shifted by one. The Transport's own check (its read
// loop peeks, and closes a connection that holds bytes while no response is expected) only wins the race
// when it runs first.
//
// How: Wrap makes the Transport dial watched connections and gives every request a GotConn trace hook. The
// hook runs on the request's goroutine after the request took a connection and before the Transport
// counts it as expecting a response or writes anything; it waits until the connection has settled:
//   - the read loop is blocked in a Read on the socket with nothing consumed since that Read began, which
//     means its read buffer is empty (a bufio.Reader reads from its source only when it holds nothing, and
//     between responses the read loop only peeks one byte), and, on TLS, the bytes read so far end on a
//     record boundary (no record is half-buffered inside crypto/tls); and
//   - the socket holds no unread byte (internal/connpeek).
//
// Then the request goes on. While the connection holds bytes, the hook waits for the read loop to take
// them: it finds them while no response is expected and closes the connection (the Transport retries a
// body-less request on a new connection, as it does after an app closed an idle one; a request with a
// body fails with a 502, never with another request's answer). TLS 1.3 post-handshake messages
// (NewSessionTicket, KeyUpdate) are consumed by crypto/tls inside that Read and do not count. A
// connection that does not settle within a second is closed.
//
// Exactness: on unix the socket read and the flag that says nothing was consumed change together under
// the connection's lock (the read goes through syscall.RawConn), so the check cannot pass while a read
// has already taken bytes that its caller has not seen. Elsewhere reads are plain and a read that took
// bytes the instant before the check can slip through; connpeek cannot look at sockets there either.
// What remains everywhere is the residual window SECURITY.md states for every pool: bytes that arrive
// after the check and before the request is written cannot be told from its answer.
//
// The wait relies on net/http's HTTP/1.1 client behaving as it does up to Go 1.26 (GotConn called before
// the request is counted and written; the read loop peeking one byte between responses); the adversarial
// test TestUnsolicitedAnswersNeverReachAnotherClient fails if a later Go changes that. HTTP/2
// connections (h2c, or h2 over TLS) are multiplexed and carry stream ids: they are not waited on.
package transportguard

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/connpeek"
)

// settleLimit bounds the wait for a connection to settle; the read loop needs microseconds.
const settleLimit = time.Second

// Transport is an http.RoundTripper over a guarded *http.Transport.
type Transport struct {
	tr *http.Transport
	// OnUnsolicited, when set, is called (on the request's goroutine) each time a connection a request
	// took is closed because the app had sent bytes no request asked for. Set it before first use.
	OnUnsolicited func()

	unsolicited atomic.Uint64
}

// Wrap guards tr in place and returns the RoundTripper to use instead of it: tr.DialContext, which must
// be set, is wrapped to return watched connections. tr must not be used directly afterwards (requests sent
// on it bypass the check).
func Wrap(tr *http.Transport) *Transport {
	dial := tr.DialContext
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newConn(c), nil
	}
	return &Transport{tr: tr}
}

// RoundTrip sends req on the Transport with the settle hook in its trace (composed with any trace the
// request's context already carries).
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { t.settle(ctx, info.Conn) }}
	return t.tr.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
}

// CloseIdleConnections closes the Transport's idle connections.
func (t *Transport) CloseIdleConnections() { t.tr.CloseIdleConnections() }

// Unsolicited is the number of connections closed because the app had sent bytes no request asked for.
func (t *Transport) Unsolicited() uint64 { return t.unsolicited.Load() }

// settle waits until nc may carry a request, or closes it (see the package doc).
func (t *Transport) settle(ctx context.Context, nc net.Conn) {
	c, _ := nc.(*conn)
	isTLS := false
	if tc, ok := nc.(*tls.Conn); ok {
		if tc.ConnectionState().NegotiatedProtocol == "h2" {
			return
		}
		c, _ = tc.NetConn().(*conn)
		isTLS = true
	}
	if c == nil {
		return // not dialled by Wrap's dialer
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.mu.Lock()
		if c.closed {
			poisoned := c.poisoned
			c.mu.Unlock()
			if poisoned {
				t.count()
			}
			return
		}
		if c.reading && (!isTLS || c.rec.between()) {
			switch connpeek.Idle(c.Conn) {
			case connpeek.Quiet:
				c.mu.Unlock()
				return // settled: the request goes on
			case connpeek.Closed:
				c.mu.Unlock()
				return // the read loop sees the end and the Transport drops the connection
			}
			// Bytes on the socket: the read loop takes them next (a TLS ticket, or an unsolicited answer
			// it then refuses); wait.
		} else if c.reading && connpeek.Idle(c.Conn) == connpeek.Quiet {
			// TLS, half a record buffered and the rest not in sight: no request asked for it.
			c.poisoned = true
			c.mu.Unlock()
			c.Close()
			t.count()
			return
		}
		wake := make(chan struct{})
		c.wake = wake
		c.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(settleLimit)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			c.Close() // the request is gone; the connection is in an unknown state
			return
		case <-timer.C:
			c.Close()
			return
		}
	}
}

func (t *Transport) count() {
	t.unsolicited.Add(1)
	if t.OnUnsolicited != nil {
		t.OnUnsolicited()
	}
}

// conn is a watched connection: Read keeps the state settle looks at.
type conn struct {
	net.Conn
	mu sync.Mutex
	// reading: a Read is waiting for bytes and none has been consumed since it began.
	reading bool
	// got: the last Read returned bytes (not an end or an error).
	got bool
	// poisoned: the connection was closed right after a read brought bytes, or by settle.
	poisoned bool
	closed   bool
	wake     chan struct{} // closed at the next Read start or Close, then nil
	rec      records
	sys      *sysReader // nil: plain reads
}

func newConn(c net.Conn) *conn {
	return &conn{Conn: c, sys: newSysReader(c)}
}

// wakeLocked wakes a waiting settle.
func (c *conn) wakeLocked() {
	if c.wake != nil {
		close(c.wake)
		c.wake = nil
	}
}

func (c *conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return c.Conn.Read(p)
	}
	c.mu.Lock()
	c.reading = true
	c.wakeLocked()
	c.mu.Unlock()
	if c.sys != nil {
		return c.sys.read(c, p)
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.consumedLocked(p[:n], err)
	c.mu.Unlock()
	return n, err
}

// consumedLocked records the outcome of a read: n bytes in p, or err.
func (c *conn) consumedLocked(p []byte, err error) {
	c.reading = false
	c.got = len(p) > 0
	c.rec.advance(p)
}

func (c *conn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		// Closed right after a read brought bytes: for a connection a request just took, the read loop
		// found them while no response was expected (settle counts it).
		c.poisoned = c.got
		c.wakeLocked()
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when the socket can (ReverseProxy does it on an upgraded
// connection whose client finished sending).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// records follows the TLS record framing of the bytes read (5-byte headers, the length in the last two):
// crypto/tls holds a record back until it is complete, so bytes read up to a boundary are all in records
// it has processed. On a plain connection the numbers mean nothing and are not consulted.
type records struct {
	body int // bytes left in the current record's body
	hdr  [5]byte
	hdrN int
}

func (r *records) advance(p []byte) {
	for len(p) > 0 {
		if r.body > 0 {
			k := min(r.body, len(p))
			r.body -= k
			p = p[k:]
			continue
		}
		k := copy(r.hdr[r.hdrN:], p)
		r.hdrN += k
		p = p[k:]
		if r.hdrN == len(r.hdr) {
			r.body = int(r.hdr[3])<<8 | int(r.hdr[4])
			r.hdrN = 0
		}
	}
}

// between reports whether the bytes read end on a record boundary.
func (r *records) between() bool { return r.body == 0 && r.hdrN == 0 }
