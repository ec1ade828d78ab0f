package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/internal/appconn"
	"github.com/switchyard/switchyard/internal/connpeek"
)

// The event loop's side of this client (internal/fastlane's loop, behind the HTTP adapter): the loop
// carries an express exchange on an app connection itself, with its own non-blocking reads and writes,
// and keeps the connections it uses in its own pool. What it sends, what answer it takes as simple, the
// errors it reports and when it gives a connection up are this client's; these methods are how it asks.

// TakeIdle removes an idle pooled connection that is still quiet (the liveness peek conn makes before a
// reuse) from the pool and returns it, or nil when there is none. The caller owns it from then on.
func (t *Transport) TakeIdle() net.Conn {
	for {
		pc := t.getIdle()
		if pc == nil {
			return nil
		}
		switch pc.peek.Idle() {
		case connpeek.Quiet:
			return pc.c
		case connpeek.Unsolicited:
			t.dropUnsolicited(pc)
		default:
			pc.c.Close()
		}
	}
}

// DialApp opens a new connection to the app (Dial with no context to watch: its own timeout bounds it).
func (t *Transport) DialApp() (net.Conn, error) { return t.Dial(contextBackground) }

// Target is what Dial connects to (see Network).
func (t *Transport) Target() (network, address string, timeout, keepAlive time.Duration) {
	return t.Network, t.Address, t.DialTimeout, t.DialKeepAlive
}

// DropUnsolicited closes c, a connection that held bytes while no request was outstanding on it, and
// counts and reports it as the pool's liveness peek does.
func (t *Transport) DropUnsolicited(c net.Conn) {
	t.dropUnsolicited(&pconn{c: c})
}

// PoolLimits are the idle pool's bounds (MaxIdleConns, IdleConnTimeout with their defaults), which a
// caller's own pool of this app's connections keeps too.
func (t *Transport) PoolLimits() (maxIdle int, idle time.Duration) {
	return max(t.maxIdle(), 0), t.idleTimeout()
}

// AnswerLimits are the limits on an answer: ResponseHeaderTimeout, ReadTimeout (the body's stall limit),
// and the longest head.
func (t *Transport) AnswerLimits() (header, stall time.Duration, maxHead int) {
	return t.ResponseHeaderTimeout, t.ReadTimeout, t.maxHead()
}

// Closed reports whether Close was called: a connection is not kept after that.
func (t *Transport) Closed() bool { return t.pool().Closed() }

// OnCloseIdle registers f, called (on the caller's goroutine) each time CloseIdleConnections or Close
// runs: a caller keeping this app's connections closes its idle ones then too.
func (t *Transport) OnCloseIdle(f func()) {
	t.hookMu.Lock()
	t.onCloseIdle = append(t.onCloseIdle, f)
	t.hookMu.Unlock()
}

func (t *Transport) closeIdleHooks() {
	t.hookMu.Lock()
	hooks := t.onCloseIdle
	t.hookMu.Unlock()
	for _, f := range hooks {
		f()
	}
}

// HeadEnd returns the length of the response head at b's start, its empty line included (a bare LF
// ends a line, as readLines takes it), or -1 when b does not hold a whole head.
func HeadEnd(b []byte) int {
	// One pass over the line ends: the first LF followed by CRLF or by LF ends the head (the earliest
	// such LF gives the shorter head, whichever of the two follows it).
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
	return -1
}

// ParseAnswer parses raw, a whole response head (HeadEnd's length), as Express does: ok says whether
// the answer is simple (see Answer). a.Status is set whenever the status line parses. a's fields point
// into raw; Free gives a back.
func ParseAnswer(raw []byte, head bool) (a *Answer, ok bool) {
	a = answers.Get().(*Answer)
	ok = simple(raw, head, a)
	return a, ok
}

// Keep says whether the answer leaves the connection reusable (no Connection: close, not HTTP/1.0
// without keep-alive).
func (a *Answer) Keep() bool { return a.keep }

// Free gives back an Answer from ParseAnswer.
func (a *Answer) Free() {
	a.fields = nil
	answers.Put(a)
}

// Stale408 is the error of an exchange a reused connection answered 408 (the app timed it out while it
// was idle): a replayable request is sent again on a new connection, as Express does.
func Stale408() error { return errStale408 }

// HeaderTimeout is the error of an exchange whose answer's head did not come within
// ResponseHeaderTimeout (answered 504).
func HeaderTimeout() error { return timeoutError{} }

// Stalled is the error of a body that stalled past ReadTimeout.
func (t *Transport) Stalled() error { return &StallError{Limit: t.ReadTimeout} }

// IOError is the error Express reports for a failed read or write (op) of a system call on c that
// failed with errno (io.EOF: the app closed): before any byte of an answer (noBytes) it is the error a
// stale reused connection gives, which a replayable request survives.
func IOError(c net.Conn, op string, errno error, noBytes bool) error {
	err := errno
	if errno != io.EOF {
		err = &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(),
			Err: os.NewSyscallError(op, errno)}
	} else if !noBytes {
		err = io.ErrUnexpectedEOF
	}
	if noBytes {
		return &noBytesError{err}
	}
	return err
}

// Resume returns the pending exchange on c, an app connection that carried a request whose answer's
// first bytes read are read (possibly none): Finish reads on from there as Express's Pending would
// (1xx answers, heads over the caller's buffer, every framing, the errors of a failed read). reused says
// whether c carried an exchange before. The connection goes to this client's pool when the answer ends
// cleanly.
func (t *Transport) Resume(c net.Conn, read []byte, reused bool) *Pending {
	if p, ok := c.(*prefixConn); ok && len(p.pre) == 0 {
		c = p.Conn
	}
	inner := c
	if len(read) > 0 {
		c = &prefixConn{Conn: c, pre: bytes.Clone(read)}
	}
	size := t.ReadBufferSize
	if size <= 0 {
		size = 4 << 10
	}
	// deadline: the loop's reads set none, but the connection may come from this pool with one set.
	pc := &pconn{c: c, br: bufio.NewReaderSize(c, size), peek: connpeek.NewPeeker(inner), reused: reused, deadline: true}
	pc.interrupt = func() { appconn.Expire(inner) }
	return &Pending{t: t, pc: pc, stop: notWatched}
}

// prefixConn is an app connection whose first reads return bytes read from it before.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// NetConn is the connection under p (the loop finds its descriptor through it).
func (p *prefixConn) NetConn() net.Conn { return p.Conn }

// SyscallConn keeps the liveness peek working on p.
func (p *prefixConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := p.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errNoSyscallConn
}

var errNoSyscallConn = errors.New("h1: connection exposes no socket")

var contextBackground = context.Background()
