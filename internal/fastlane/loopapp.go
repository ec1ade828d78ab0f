package fastlane

import (
	"net"
	"net/http"
	"time"
)

// LoopApp is an ExpressApp whose exchanges the lane's event loop may carry itself (Linux): the loop
// writes the request and reads the answer on the app's connection with non-blocking calls, among every
// other connection of the loop, and hands the exchange to the app's handler (on a goroutine) at the
// first thing it does not finish itself.
type LoopApp interface {
	ExpressApp
	// LoopUpstream is the app's connections and its client's rules; nil: the loop does not carry this
	// app's exchanges (the express path's goroutine does).
	LoopUpstream() LoopUpstream
	// AppendOutgoing appends the request Express would send for x to b (room for x's head, body and
	// 512 bytes); ok false: the app does not take x this way. replay says whether the request may be
	// sent again when a reused connection turns out stale.
	AppendOutgoing(b []byte, x *Exchange) (out []byte, replay, ok bool)
	// Attempt starts an exchange's use of an instance of the app when the app counts them (health
	// checks, a circuit breaker, several instances: an InstanceAttempt); nil when it does not. replay
	// says the request may be sent twice (its method is idempotent, or it has an Idempotency-Key). err:
	// no instance may be tried now, and the loop does not take the request (the handler chain answers
	// it as the app would).
	Attempt(replay bool) (Attempt, error)
	// Failed is the handler that answers, in the app's place, an exchange that failed with err before
	// its answer came (its attempt was ended with err).
	Failed(err error) http.Handler
	// Resume is the handler that finishes, in the app's place, an exchange sent on c of whose answer
	// read has been read (possibly nothing); reused says c carried an exchange before. It owns c and
	// ends a, the exchange's attempt (nil: none).
	Resume(c net.Conn, read []byte, reused bool, a Attempt) http.Handler
}

// Attempt is one exchange's use of an app's instance, counted by the app. End reports its outcome,
// once: err nil when the answer's head came (status is its status) and the answer is over, else the
// failure before it; gone says the exchange ended because the client left (counted as nothing).
type Attempt interface {
	End(err error, status int, gone bool)
}

// InstanceAttempt is an Attempt on one instance of an app of several, the one its balancer picked: the
// loop sends the exchange on that instance's connections (Upstream: the same answer rules and limits
// as the app's LoopUpstream), names it in the exchange's Record, and asks Next when the exchange fails
// before its answer.
type InstanceAttempt interface {
	Attempt
	Upstream() LoopUpstream
	Name() string
	// Next ends the attempt, failed with err before its answer (bodySent: it took some of the
	// request's body, as the app's client takes it once it has a connection), and returns the attempt on
	// the instance the app's balancer sends the request to next; nil when it sends it nowhere else,
	// final then being the failure to answer (Failed) with.
	Next(err error, bodySent bool) (next InstanceAttempt, final error)
}

// LoopUpstream is an app's connection source and answer rules, as the loop uses them. It must be
// comparable: the loop keeps one pool of connections per LoopUpstream.
type LoopUpstream interface {
	// TakeIdle takes a quiet idle connection from the app client's pool (nil: none); Dial opens a new one
	// (blocking: never called on the loop).
	TakeIdle() net.Conn
	Dial() (net.Conn, error)
	// Target is what Dial connects to: network "tcp" (address an IP literal and a port, for the loop to
	// connect itself) or "unix" (a socket path), the connect timeout and the TCP keep-alive period (0:
	// none); anything else is dialed with Dial on a goroutine.
	Target() (network, address string, timeout, keepAlive time.Duration)
	// PoolLimits bound the loop's own pool of the app's idle connections.
	PoolLimits() (maxIdle int, idle time.Duration)
	// AnswerLimits: the wait for the answer's head, the body's stall limit, the longest head.
	AnswerLimits() (header, stall time.Duration, maxHead int)
	// HeadEnd is the length of the answer head at b's start, or -1 when b holds no whole head.
	HeadEnd(b []byte) int
	// ParseAnswer parses a whole head; ok says it is simple. a's status is set whenever the status line
	// parses; a is valid until Free.
	ParseAnswer(raw []byte, head bool) (a AnswerHead, ok bool)
	// The errors the app's client reports: a failed read or write on c (errno io.EOF: closed by the
	// app; noBytes: no byte of an answer came), a head past the header limit, a body past the stall
	// limit, a stale 408.
	IOError(c net.Conn, op string, errno error, noBytes bool) error
	HeaderTimeout() error
	Stalled() error
	Stale408() error
	// DropUnsolicited closes a connection that sent bytes while idle, counted and reported.
	DropUnsolicited(c net.Conn)
	// Closed says the app's client is closed (a retired gateway): connections are not kept. OnCloseIdle
	// registers a function called each time the client closes its idle connections.
	Closed() bool
	OnCloseIdle(f func())
}

// AnswerHead is a parsed answer head (see Answer).
type AnswerHead interface {
	Status() int
	NumFields() int
	Field(i int) (name, value []byte)
	ContentLength() int64
	HasBody() bool
	// Keep says the answer leaves the connection reusable.
	Keep() bool
	Free()
}
