package fastlane

import (
	"net"
	"net/http"
	"time"
)

// Router is what the server's handler implements to let the lane serve requests: LaneHandler returns the
// handler to serve r with when r is one the lane may serve (its route a plain proxied HTTP app on the
// direct path, nothing in front of it that the lane does not mirror), else nil; done, when not nil, is
// called once the request is over. A server whose handler is no Router gets every connection handed.
type Router interface {
	LaneHandler(r *http.Request) (h http.Handler, done func())
}

// Options configure a Listener.
type Options struct {
	// Server is the http.Server that serves the Listener (and every connection handed to it). The lane
	// reads its Handler (a Router), ReadHeaderTimeout, IdleTimeout, MaxHeaderBytes, BaseContext,
	// ConnContext and ErrorLog, as net/http would for the same connection.
	Server *http.Server
	// MaxBody is the longest request body the lane takes (a request with a longer declared body is handed
	// to net/http); 0 means 64 KiB.
	MaxBody int64
	// Parker, when not nil, parks the lane's idle keep-alive connections (see Parker). It must be the
	// listener the lane wraps (or one under it): a parked connection comes back through its Accept.
	Parker Parker
	// Loops is the number of event loops (Linux) that serve connections whose requests take the express
	// path: 0 means GOMAXPROCS, a negative number none (every connection on a goroutine of its own).
	Loops int
}

// Parker holds idle connections without a goroutine (internal/idlepark's Listener, which parks
// net/http's idle connections the same way). A lane connection that has served a request, holds no
// unconsumed byte (nothing pipelined: its read buffer went back to the pool) and stays idle for
// ParkAfter is given to Park with its idle deadline (the server's IdleTimeout, counted from the start of
// the wait, as net/http counts it) and its goroutine ends. When the connection becomes readable it comes
// back through the wrapped listener's Accept and the lane serves it as a new connection (a fresh
// ReadHeaderTimeout, as net/http's after a park); the parker closes it at its idle deadline, when the
// peer closes it and when the listener is closed. A connection that was parked keeps its place in the
// connection limits under the parker (internal/connlimit): it is not admitted a second time.
type Parker interface {
	// ParkAfter is how long an idle connection waits in the lane before it is parked; 0 never parks.
	ParkAfter() time.Duration
	// Park takes c (returned by the wrapped listener's Accept), to be closed at idle (zero: never).
	Park(c net.Conn, idle time.Time)
}
