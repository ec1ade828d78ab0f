// Package connpeek owns the idle check of pooled application connections: before a connection that waited
// in a pool carries a new request, one non-blocking look at its socket says whether the application closed
// it, or sent bytes that no request asked for.
//
// Why it matters: an HTTP/1.1 or FastCGI connection has no request identifier on the wire that the gateway
// can trust, so bytes that arrive while a connection is idle (an app that answered twice, or read a request
// body as a second request: a CL.0 desync behind the gateway) would be read as the answer to the next
// request sent on it, which is another client's. That is response-queue poisoning; a connection that has
// unread bytes must never be reused.
package connpeek

import "net"

// State is what an idle connection's socket holds.
type State int

const (
	// Quiet: nothing to read and the connection is open; it may carry a request.
	Quiet State = iota
	// Closed: the peer closed the connection, or the socket failed.
	Closed
	// Unsolicited: the peer sent bytes while no request was outstanding. The connection is poisoned:
	// close it, and log and count the event.
	Unsolicited
)

// TimedOut reports whether b, bytes an idle connection held, starts a 408 status line: an app that timed
// the idle connection out and closes it (Node does so once its headers timeout passes). Such a
// connection is Closed, not Unsolicited, as net/http's Transport closes it quietly; it is dropped all
// the same. A line cut before its status is not a 408.
func TimedOut(b []byte) bool {
	const v10, v11 = "HTTP/1.0 408", "HTTP/1.1 408"
	if len(b) < len(v11) {
		return false
	}
	s := string(b[:len(v11)])
	return (s == v10 || s == v11) && (len(b) == len(v11) || b[len(v11)] == ' ' || b[len(v11)] == '\r')
}

func (s State) String() string {
	switch s {
	case Quiet:
		return "quiet"
	case Closed:
		return "closed"
	}
	return "unsolicited"
}

// Idle looks at c without blocking and without consuming anything. Connections that do not expose a
// socket (net.Pipe, TLS) are reported Quiet: their users rely on their protocol's own checks.
func Idle(c net.Conn) State { return idle(c) }

// Peeker is Idle for one connection, made once: its checks allocate nothing (Idle makes the socket's
// raw handle and a closure each time). A Peeker is not safe for concurrent use.
type Peeker struct{ peeker }

// NewPeeker returns the Peeker of c.
func NewPeeker(c net.Conn) *Peeker {
	p := &Peeker{}
	p.init(c)
	return p
}

// Idle is connpeek.Idle for the Peeker's connection.
func (p *Peeker) Idle() State { return p.idle() }
