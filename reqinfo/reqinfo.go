// Package reqinfo owns the per-request record that the gateway's pieces fill in as a request travels
// (which route claimed it, which applications the cascade tried, which one answered) and that the access
// log, metrics and migration ledger read when it is done.
//
// The record is attached once, at the front door, by Attach; every other piece reads it with From, which
// returns nil when there is none, so library users who embed a single handler pay nothing.
//
// The record also holds what the answer was (status, bytes, hijacked), written by the one recording
// ResponseWriter that Info.RecordResponse installs: the outermost middleware (the access log) installs it,
// and the middleware inside reads Info.Response once their next handler returns instead of wrapping the
// writer again.
package reqinfo

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Info is what is known about one request. Its methods are safe for concurrent use (shadow copies run in
// their own goroutines).
type Info struct {
	mu       sync.Mutex
	route    string
	app      string
	tried    []string
	upstream string
	failures []Failure
	unreach  string
	appTime  time.Duration
	start    time.Time // set by Attach, never changed: read without the lock
	head     bool      // the request is a HEAD (set by Attach): its answer's body bytes are not sent

	// triedBuf holds the first apps tried (a cascade rarely asks more than two), so that Tried does not
	// allocate; ctx is the request context Attach makes, kept here so that attaching costs one allocation
	// for both.
	triedBuf [2]string
	ctx      infoContext

	// The answer as rw saw it; recording says rw is installed. rw lives in the Info so that recording
	// costs no allocation of its own.
	recording bool
	resp      Response
	rw        responseWriter
}

// Failure is one failed attempt to reach an application, as failure.Answer recorded it.
type Failure struct {
	App, Upstream string
	Err           error
}

type ctxKey struct{}

// Attach returns r with a fresh Info attached, and that Info, whose Start is now. The Info and the context
// carrying it are one allocation; the request copy WithContext makes is the other.
func Attach(r *http.Request) (*http.Request, *Info) {
	return AttachAt(r, time.Now())
}

// AttachAt is Attach with the request's start given: for a request whose serving began before its
// handler chain was entered (the fast lane's exchanges that the chain finishes).
func AttachAt(r *http.Request, start time.Time) (*http.Request, *Info) {
	in := &Info{start: start, head: r.Method == http.MethodHead}
	in.ctx = infoContext{Context: r.Context(), in: in}
	return r.WithContext(&in.ctx), in
}

// infoContext is the request's context with an Info attached: context.WithValue's semantics, without its
// allocation.
type infoContext struct {
	context.Context
	in *Info
}

func (c *infoContext) Value(key any) any {
	if _, ok := key.(ctxKey); ok {
		return c.in
	}
	return c.Context.Value(key)
}

// Start returns when the record was attached (the request's start for the access log, metrics and the
// migration ledger, which so share one clock reading), or the zero time for a nil Info or one not made by
// Attach. Nil-safe.
func (in *Info) Start() time.Time {
	if in == nil {
		return time.Time{}
	}
	return in.start
}

// From returns the Info attached to ctx, or nil.
func From(ctx context.Context) *Info {
	in, _ := ctx.Value(ctxKey{}).(*Info)
	return in
}

// SetRoute records the route pattern that claimed the request. Nil-safe.
func (in *Info) SetRoute(pattern string) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.route = pattern
	in.mu.Unlock()
}

// Claim records that route claimed the request and app was asked: SetRoute and Tried in one step.
// Nil-safe.
func (in *Info) Claim(route, app string) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.route = route
	in.triedLocked(app)
	in.mu.Unlock()
}

// Tried records that app was asked; the last one tried is the one that answered. It clears the upstream
// an earlier app recorded, so that the upstream is always the answering app's (empty when its kind does
// not record one). Nil-safe.
func (in *Info) Tried(app string) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.triedLocked(app)
	in.mu.Unlock()
}

// triedLocked is Tried with in.mu held.
func (in *Info) triedLocked(app string) {
	if in.tried == nil {
		in.tried = in.triedBuf[:0]
	}
	in.tried = append(in.tried, app)
	in.app = app
	in.upstream = ""
}

// SetUpstream records the concrete upstream address (instance) an adapter used. Nil-safe.
func (in *Info) SetUpstream(addr string) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.upstream = addr
	in.mu.Unlock()
}

// Failed records that talking to app at upstream failed with err (the request may still have been
// answered, by a cascade's next app). Nil-safe.
func (in *Info) Failed(app, upstream string, err error) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.failures = append(in.failures, Failure{App: app, Upstream: upstream, Err: err})
	in.mu.Unlock()
}

// Unreached records that app was never reached (its connection could not be opened, no instance was
// available) and that the next app was asked instead (delegate.App.FallBack). Nil-safe.
func (in *Info) Unreached(app string) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.unreach = app
	in.mu.Unlock()
}

// Snapshot is a copy of an Info's fields. Tried and Failures are read-only views of the record (taking a
// snapshot allocates nothing): they never change after the snapshot is taken, since the record only ever
// appends, and appending to them copies, but their elements must not be assigned.
type Snapshot struct {
	Route    string
	App      string
	Tried    []string
	Upstream string
	Failures []Failure
	// Unreached is the app the request fell back from (Info.Unreached): never reached, so the next app
	// served it; "" when there was none.
	Unreached string
	// AppTime is the time spent inside applications (every app the cascade tried), from handing over the
	// request to the end of the answer: the gateway's share of a request's duration is the rest.
	AppTime time.Duration
}

// AddAppTime adds d to the time spent inside applications. Nil-safe.
func (in *Info) AddAppTime(d time.Duration) {
	if in == nil {
		return
	}
	in.mu.Lock()
	in.appTime += d
	in.mu.Unlock()
}

// Snapshot returns the current state (see Snapshot for what it shares). Nil-safe.
func (in *Info) Snapshot() Snapshot {
	if in == nil {
		return Snapshot{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	// Full slice expressions: an append by the holder must copy, never write into the record's spare room.
	return Snapshot{Route: in.route, App: in.app, Tried: in.tried[:len(in.tried):len(in.tried)], Upstream: in.upstream,
		Failures: in.failures[:len(in.failures):len(in.failures)], Unreached: in.unreach, AppTime: in.appTime}
}
