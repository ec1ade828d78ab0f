// Package clientbody owns the end of a request body that a handler streamed from the client's own HTTP/1
// connection in full duplex (http.ResponseController.EnableFullDuplex), as the CGI-family adapters do
// while the app's answer already goes out.
//
// Why a handler must end such a body itself: without full duplex, net/http reads an unread body (up to
// 256 KiB) before it writes the response head. With full duplex it does that only after the handler has
// returned, in finishRequest, after it has stopped its own background read of the connection: a body that
// reaches its end there arms that background read again, nobody stops it, and the server's read of the
// next request on the keep-alive connection then panics with "invalid concurrent Body.Read call" (Go issue
// 68560): the connection is dropped and a request sent on it is lost. End reads the rest, or closes the
// connection, while the handler still runs.
//
// It also settles what a failed read leaves behind: a read of the client's connection that fails (an
// expired deadline set to wake it, the client's own stall) cancels the context of the connection, and so
// of every later request on it, and leaves the rest of the body on the wire, where it would be read as the
// next request. Such a connection is closed after the answer.
package clientbody

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// MaxDrain is how much unread body End reads to keep the connection, as net/http does before a head: a
// remainder this size or larger closes the connection instead.
const MaxDrain = 256 << 10

// DrainGrace is how long End waits for the rest of a body the client is still sending. It is short: the
// answer is complete, and a client that is not sending its rest right now only costs its connection.
const DrainGrace = 50 * time.Millisecond

// expired is a read deadline in the past: a read under it fails at once instead of waiting for the client.
var expired = time.Unix(1, 0)

// End finishes body, the request body a handler streamed from the client's HTTP/1 connection, before the
// handler returns. Call it in the handler's goroutine once every read of body has returned.
//
//   - unread is how much of the declared length was not read (0 when the body was read to its end);
//   - woke reports that the caller set an expired read deadline (http.ResponseController.SetReadDeadline)
//     to end a read of body that was pending;
//   - readErr is the first error a read of body returned other than io.EOF (nil when none did).
//
// A rest under MaxDrain is read and discarded, waiting at most DrainGrace for the client; when that
// reaches the end of the body, and no read of the connection failed before, the connection stays open
// for the next request. Otherwise net/http is told to close the connection once the answer is complete
// (CloseAfterReply, which also works after the head went out), and body is closed without waiting for the
// client. The read deadline is lifted on return. Where w offers no read deadline (HTTP/2, whose streams are
// framed and never desynchronise, or a writer without Unwrap, under which full duplex is not on either),
// End only closes body.
func End(w http.ResponseWriter, body io.Closer, unread int64, woke bool, readErr error) {
	// A failed read of the connection cancelled its context; a pending read woken after the body's end
	// may have hit net/http's background read instead, with the same effect.
	mustClose := readErr != nil || woke && unread <= 0
	if unread <= 0 {
		if mustClose {
			CloseAfterReply(w)
		}
		return
	}
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(DrainGrace)
	if mustClose || unread >= MaxDrain {
		mustClose = true
		deadline = expired
	}
	if err := rc.SetReadDeadline(deadline); err != nil {
		_ = body.Close()
		return
	}
	// net/http's Close reads the rest (up to 256 KiB) looking for the end, here under the deadline.
	// Reaching the end arms net/http's background read now, while the handler runs, so the server stops
	// it before it reads the next request.
	if err := body.Close(); err != nil {
		mustClose = true
	}
	_ = rc.SetReadDeadline(time.Time{})
	if mustClose {
		CloseAfterReply(w)
	}
}

// CloseAfterReply tells the HTTP/1 server behind w to close the connection once the current answer is
// complete, even when its head was already sent: net/http then finishes the answer as framed (the end of
// a chunked body included), shuts down its side of the connection and lingers briefly so the client reads
// the answer before the close. w's chain is followed through Unwrap to the server's own writer; any other
// writer at its end (HTTP/2's, whose streams need no such close, or a test recorder) is left as it is.
//
// net/http has no direct way to ask for this after the head; http.MaxBytesReader is documented to tell the
// server's ResponseWriter to close the connection once its limit is passed, and one byte over a limit of
// 0 passes it now.
func CloseAfterReply(w http.ResponseWriter) {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	var b [1]byte
	_, _ = http.MaxBytesReader(w, io.NopCloser(strings.NewReader("x")), 0).Read(b[:])
}
