package upstream

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
)

// Idempotent reports whether r may be sent twice: GET, HEAD, OPTIONS, TRACE, PUT and DELETE are
// idempotent by definition (RFC 9110 9.2.2), any other method only when the client sent an
// Idempotency-Key.
func Idempotent(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, ok := r.Header["Idempotency-Key"]
	return ok
}

// Retryable reports whether an attempt that failed with err may go to another instance. Never once the
// attempt took any of the request's body (bodySent): those bytes are gone, and another instance would get
// a short body and be blamed for it (a reused connection's request sent again on a new one that then
// fails to connect took it too). Otherwise after a dial error any request may (it reached no instance,
// so even a POST cannot be applied twice); after any other connection failure only an idempotent request.
// Timeouts past the dial are not retried (the instance may be working on the request: sending it again
// doubles the load of a slow cluster), nor are cancellations.
func Retryable(ctx context.Context, err error, idempotent, bodySent bool) bool {
	if err == nil || bodySent || ctx.Err() != nil || errors.Is(err, context.Canceled) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if !idempotent || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var mbe *http.MaxBytesError
	return !errors.As(err, &mbe)
}

// BodyGuard shares one request body between attempts so that an attempt that failed before reading any of
// it can be retried with the same body. Each attempt reads through its own reader from Attempt; Detach
// cuts an attempt off (its later reads fail, so a transport goroutine still holding it can never consume
// bytes meant for the next attempt) and says whether it consumed anything.
type BodyGuard struct {
	body io.ReadCloser
	mu   sync.Mutex // held while reading from body
}

// NewBodyGuard guards body (which may be nil or http.NoBody).
func NewBodyGuard(body io.ReadCloser) *BodyGuard { return &BodyGuard{body: body} }

// Attempt returns a reader for one attempt. Its Close does not close the shared body (the server owns the
// inbound request body).
func (g *BodyGuard) Attempt() *AttemptBody { return &AttemptBody{g: g} }

// AttemptBody is one attempt's view of a guarded body.
type AttemptBody struct {
	g        *BodyGuard
	detached bool // guarded by g.mu
	read     bool // guarded by g.mu
}

var errDetached = errors.New("upstream: request body handed to another attempt")

// Read reads from the shared body unless the attempt was detached.
func (a *AttemptBody) Read(p []byte) (int, error) {
	a.g.mu.Lock()
	defer a.g.mu.Unlock()
	if a.detached {
		return 0, errDetached
	}
	n, err := a.g.body.Read(p)
	if n > 0 || err != nil {
		// A read error (even EOF of an empty body) means the transport went as far as the body.
		a.read = true
	}
	return n, err
}

// Close is a no-op: the body is shared.
func (a *AttemptBody) Close() error { return nil }

// Detach cuts the attempt off and reports whether it may have consumed body bytes. A read in progress
// counts as consumed (it cannot be waited for: a slow client could block it forever).
func (a *AttemptBody) Detach() (consumed bool) {
	if !a.g.mu.TryLock() {
		return true
	}
	defer a.g.mu.Unlock()
	a.detached = true
	return a.read
}
