package middleware

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/switchyard/switchyard/failure"
)

// ClientDeadlines returns middleware that bounds how long a client may stall in the middle of a request:
// each read of the request body must make progress within idle, and so must each write of the response
// (a client that stops reading is cut off). Unlike a whole-request read or write timeout, a slow but steady
// upload or download, or an event stream with long pauses between events, is never cut: only silence is.
// This is what stops a slowloris body (one byte a minute) from pinning a connection and, through the
// cascade's held body, an upstream slot.
//
// The read deadline is cleared once the body is read to its end, so the server's background read of an
// idle keep-alive or streaming connection is unaffected; both deadlines are cleared when a handler hijacks
// the connection (a WebSocket lives by its own rules). The end of the answer, which net/http writes after
// the handler returns, gets a fresh write deadline; net/http clears it before the connection's next
// request. Response memory stays bounded by construction: a Write blocks once the socket's send buffer is
// full, so a client that never reads holds at most the socket buffers plus net/http's and the adapter's
// copy buffers, and is cut after idle. idle <= 0 returns next unchanged.
func ClientDeadlines(idle time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if idle <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dw := &deadlineWriter{ResponseWriter: w, idle: idle, slack: idle >> 10, wd: findWriteDeadliner(w)}
			var body *deadlineBody
			if r.Body != nil && r.Body != http.NoBody {
				body = &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle, header: w.Header()}
				r.Body = body
			}
			next.ServeHTTP(dw, r)
			// What the handler left in net/http's buffer (and the chunked terminator) is written after it
			// returns, under the deadline of its last Write, which a handler that paused before returning
			// has let pass: the end of the answer gets a fresh one.
			dw.extend()
			if body != nil && body.timedOut && !dw.wrote && !dw.hijacked {
				// net/http cancels the request's context when a body read times out, so a handler that
				// sees only the cancellation (a proxy mid-upload) takes the client for gone and answers
				// nothing; the client is still there, waiting, and is owed a 408.
				w.Header().Set("Connection", "close")
				http.Error(w, "408 request body not received in time", http.StatusRequestTimeout)
			}
		})
	}
}

type deadlineBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	idle     time.Duration
	header   http.Header // the response's, to close the connection after a stalled body
	done     bool
	timedOut bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	if b.done {
		return b.ReadCloser.Read(p)
	}
	// ErrNotSupported (HTTP/2 streams, test recorders) leaves the read unbounded rather than failing it.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.done = true
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The rest of the body will never be read: the connection must close after the answer, or
			// net/http would wait for the remainder to discard it before answering.
			b.header.Set("Connection", "close")
			b.timedOut = true
			return n, fmt.Errorf("%w: %w", failure.ErrClientTimeout, err)
		}
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

type deadlineWriter struct {
	http.ResponseWriter
	idle     time.Duration
	slack    time.Duration // idle/1024: see extend
	until    time.Time     // the write deadline last set through this writer (zero: none yet)
	hijacked bool
	wrote    bool
	// wd is the writer in the Unwrap chain that takes write deadlines, found once per request (as
	// http.ResponseController would on every call, allocating an error each time where none does, as in
	// test recorders); nil leaves writes unbounded.
	wd writeDeadliner
}

type writeDeadliner interface{ SetWriteDeadline(time.Time) error }

// findWriteDeadliner looks for SetWriteDeadline along w's Unwrap chain, as http.ResponseController does.
func findWriteDeadliner(w http.ResponseWriter) writeDeadliner {
	for {
		switch t := w.(type) {
		case writeDeadliner:
			return t
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return nil
		}
	}
}

// extend makes sure the connection's write deadline is at least idle away, unless it was hijacked or takes
// no deadlines. Moving a deadline costs a runtime timer update, and an answer's writes (and the end of the
// answer) come microseconds apart: so a deadline is set slack (idle/1024) further than idle, and left as
// it is while it is still at least idle away. A client is thus never cut before idle of silence, and at
// most idle/1024 after it.
func (w *deadlineWriter) extend() {
	if w.hijacked || w.wd == nil {
		return
	}
	now := time.Now()
	if !w.until.IsZero() && !now.Add(w.idle).After(w.until) {
		return
	}
	w.until = now.Add(w.idle + w.slack)
	_ = w.wd.SetWriteDeadline(w.until)
}

// SetWriteDeadline sets the connection's write deadline (for http.ResponseController), keeping extend's
// record of it true.
func (w *deadlineWriter) SetWriteDeadline(t time.Time) error {
	if w.wd == nil {
		return http.ErrNotSupported
	}
	err := w.wd.SetWriteDeadline(t)
	if err == nil {
		w.until = t
	}
	return err
}

func (w *deadlineWriter) WriteHeader(code int) {
	if code >= 200 {
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	w.wrote = true
	w.extend()
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	w.wrote = true
	w.extend()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *deadlineWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		_ = c.SetDeadline(time.Time{})
	}
	return c, brw, err
}

func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
