package fastlane

import (
	"net/http"
	"strings"
	"time"
)

// The express path (issue 18, stage 2): for a request whose route is one plain HTTP app and whose answer
// is simple, the lane writes the outgoing request from the parsed head and the answer from the app's raw
// head, with no http.Request, no header map, no handler chain and no per-request goroutine, and records
// the exchange (access line, metrics, migration ledger) through the same functions the handler chain
// calls. What it cannot finish itself it hands on at the latest safe point:
//
//   - before anything is sent (the route has no express plan, the app does not take the request on its
//     direct path, a field the front door would change or trust, a body not yet wholly read): the
//     request is served as the lane serves any other, through the handler chain;
//   - after the request was sent (the app failed before answering, or its answer is not simple: 1xx,
//     chunked or close-delimited, trailers, no Content-Type, fields the relay changes): the lane builds the
//     request and serves it through the route's handler chain with the app's handler replaced by Rest,
//     which finishes that very exchange as the app's handler would have (its error answer, or the relay
//     of the answer already under way). The request id sent to the app is the request's.

// ExpressRouter is implemented by a Router whose routes may have an express plan.
type ExpressRouter interface {
	// ExpressRoute returns the express plan of the route a request with this method, Host and path takes,
	// or nil; release (not nil with a plan) is called once the exchange is over. The strings are only
	// valid during the call.
	ExpressRoute(method, host, path string) (x *Express, release func())
}

// Express is a route's express plan.
type Express struct {
	// App is the route's one app.
	App ExpressApp
	// Finish returns the handler that serves a request of the route with rest in the app's place: the
	// front layers, the route's claim, then rest, whose time in the app counts from appStart (when the
	// request was sent to it).
	Finish func(rest http.Handler, appStart time.Time) http.Handler
	// Record records an exchange the express path finished itself, as the handler chain records one. The
	// record's strings are only valid during the call.
	Record func(*Record)
	// Started, when not nil, is called as an express exchange starts (the in-flight count of the handler
	// chain's metrics), and Abandoned when it goes on through the handler chain, which counts it itself,
	// or is not taken after all; an exchange that ends in Record is not Abandoned.
	Started, Abandoned func()
	// AppendRequestID appends a fresh request id; ValidRequestID says whether a client's id is kept.
	AppendRequestID func([]byte) []byte
	ValidRequestID  func(string) bool
	// Forwarding reports whether a field (canonical name) is one the front door deletes from, or trusts
	// on, a request: a request with one is not taken.
	Forwarding func(name string) bool
	// ClientStall is the client's stall limit (the handler chain's middleware.ClientDeadlines): on the
	// rest of a request's body and on the writing of the answer; 0 means none.
	ClientStall time.Duration
	// MaxBody is the front door's body limit (0: none): a longer declared body is not taken.
	MaxBody int64
	// Mount is how the route tells its app its prefix (the zero Mount: it does not).
	Mount Mount
	// Next, when not nil, is the plan of the next app of the route's cascade: an answer of App whose
	// status Pass says passes the request on is discarded, and the request goes to Next's app. Such a
	// plan takes no body longer than Hold (what the cascade holds for re-sending). Finish and Record
	// are then this position's: the cascade from App on, the apps before it already tried.
	Next *Express
	Pass func(status int) bool
	Hold int64
}

// Mount is how a route tells its app where the app is mounted, as the handler chain's prefix middleware
// does (router.StripPrefix, router.ScriptNameHeader): Field, when not empty, is a field the app gets with
// Prefix (the route's prefix without its trailing slash) as its value; with Strip, the app gets the path
// below Prefix ("/" for Prefix itself) instead of the whole path.
type Mount struct {
	Prefix string
	Field  string // the field's name as it is sent
	Strip  bool
}

// Path is path as the app gets it (ok false: path is not at or below a stripped prefix).
func (m Mount) Path(path string) (string, bool) {
	if !m.Strip {
		return path, true
	}
	rest, ok := strings.CutPrefix(path, m.Prefix)
	switch {
	case !ok || rest != "" && rest[0] != '/':
		return path, false
	case rest == "":
		return "/", true
	}
	return rest, true
}

// Extra is how many bytes m's field adds to an outgoing head.
func (m Mount) Extra() int {
	if m.Field == "" {
		return 0
	}
	return len(m.Field) + len(m.Prefix) + len(": \r\n")
}

// ExpressApp is an app that serves express exchanges (the HTTP adapter on its direct path).
type ExpressApp interface {
	// Express sends x's request. ok false: the app does not take it this way, nothing was sent. Else
	// either a is the app's simple answer (the caller writes it, reads its body and closes it), or rest
	// (a nil) serves the rest of the exchange in the app's place.
	Express(x *Exchange) (a Answer, rest http.Handler, ok bool)
	// Undelivered logs an answer that failed after its head was written: the app failed (or stalled)
	// mid-body, or (clientGone) the client went away; as the response relay logs it. upstream names the
	// instance of an app of several that answered ("" for the app's one).
	Undelivered(method, path, upstream string, status int, clientGone bool, err error)
}

// Exchange is one express request, as the app gets it.
type Exchange struct {
	Head *Head
	// Keys are the canonical names of Head's fields, in order.
	Keys []string
	// Body is the whole request body (Head.ContentLength bytes).
	Body []byte
	// RequestID is the request's id (the client's, when kept, or a fresh one).
	RequestID string
	// Peer is the client's IP address.
	Peer string
	// Mount is the route's (Express.Mount).
	Mount Mount
	// Scratch is room for the outgoing request (the caller's buffer after the request; appending past its
	// capacity allocates).
	Scratch []byte
	// Gone reports whether the client closed its connection (asked while the app is slow to answer: an
	// exchange whose client left ends, as a cancelled request's would).
	Gone func() bool
}

// Answer is a simple answer of an app: a final status of 200 to 599, fields the relay copies as they are
// (Connection and Keep-Alive left out), and a body that is either absent (HEAD, 204, 304) or of its
// declared Content-Length with a Content-Type.
type Answer interface {
	Status() int
	NumFields() int
	// Field returns the i-th field: the name as the app spelled it, the value without surrounding blanks.
	Field(i int) (name, value []byte)
	// ContentLength is the declared length (-1 when none); HasBody says whether a body follows.
	ContentLength() int64
	HasBody() bool
	// Read reads the body, io.EOF at its end.
	Read(p []byte) (int, error)
	// Close ends the answer (the app's connection is kept only after the whole body).
	Close()
}

// Record is an exchange the express path finished, for the access line, the metrics and the ledger.
type Record struct {
	Method, Path, Host   string
	Client               string // the client's address, as http.Request.RemoteAddr
	RequestID            string
	TraceParent          string // the client's traceparent field ("" none)
	Status               int
	Bytes                int64
	Start, End, AppStart time.Time
	// Aborted says the answer was cut after its head (the app failed mid-body).
	Aborted bool
	// Upstream is the instance that answered, of an app of several ("": the app's one).
	Upstream string
}
