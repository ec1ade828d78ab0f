package httpproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/reqinfo"
)

// balancer is the RoundTripper of an app with several instances (or health checks, or a breaker): each
// attempt goes to the instance the Set picks. A request whose attempt got a dial error, and an idempotent
// request whose connection failed before anything of its body was sent, is retried on another instance,
// within the retry count and budget.
type balancer struct {
	set     *upstream.Set
	insts   []*instance // by upstream.Instance.Index
	retries int
	logger  *slog.Logger
	app     string
}

// instanceError is a failed attempt's error naming the instance (for the log line) and how many attempts
// were made. It unwraps to the transport's error, so timeouts still map to 504.
type instanceError struct {
	upstream string
	attempts int
	err      error
}

func (e *instanceError) Error() string {
	if e.attempts > 1 {
		return fmt.Sprintf("%v (last of %d attempts)", e.err, e.attempts)
	}
	return e.err.Error()
}

func (e *instanceError) Unwrap() error { return e.err }

// RoundTrip sends req to one instance, or several in turn, as described on balancer.
func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	info := reqinfo.From(ctx)
	budget := b.set.Budget()
	budget.Request()
	retry := b.retries > 0 && len(b.insts) > 1
	idempotent := upstream.Idempotent(req)
	var guard *upstream.BodyGuard
	if retry && req.Body != nil && req.Body != http.NoBody {
		guard = upstream.NewBodyGuard(req.Body)
	}
	var triedBuf [4]*upstream.Instance
	tried := triedBuf[:0]
	var lastErr error
	for n := 1; ; n++ {
		a, err := b.set.Acquire(req, tried)
		if err != nil {
			if lastErr != nil {
				return nil, lastErr // every other instance is unavailable: the real failure is the last one
			}
			return nil, err
		}
		in := b.insts[a.Instance.Index()]
		out := new(http.Request)
		*out = *req
		u := *req.URL
		u.Scheme, u.Host = in.scheme, in.host
		out.URL = &u
		var body *upstream.AttemptBody
		if guard != nil {
			body = guard.Attempt()
			out.Body = body
		}
		info.SetUpstream(in.upstream)
		resp, err := in.rt.RoundTrip(out)
		if err == nil {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				// An upgraded connection is a tunnel, not a request in flight; its body must stay an
				// io.ReadWriteCloser for ReverseProxy.
				a.Done(ctx, nil, resp.StatusCode)
			} else {
				resp.Body = &doneBody{ReadCloser: resp.Body, a: a, req: req, status: resp.StatusCode}
			}
			return resp, nil
		}
		lastErr = &instanceError{upstream: in.upstream, attempts: n, err: err}
		tried = append(tried, a.Instance)
		consumed := false
		if body != nil {
			consumed = body.Detach()
		}
		if !b.again(ctx, a, in, err, n, retry, idempotent, consumed) {
			return nil, lastErr
		}
	}
}

// again ends a, attempt n of a request on in, failed with err before its answer, and says whether the
// request goes to another instance: retry says the app retries at all, idempotent and consumed are the
// request's (upstream.Retryable), and a retry takes the budget's leave. The balancer, the direct path
// and the lane's loop (balancedAttempt) decide by it alike.
func (b *balancer) again(ctx context.Context, a *upstream.Attempt, in *instance, err error, n int, retry, idempotent, consumed bool) bool {
	a.Done(ctx, err, 0)
	if !retry || n > b.retries || !upstream.Retryable(ctx, err, idempotent, consumed) {
		return false
	}
	allowed := b.set.Budget().AllowRetry()
	a.Instance.CountRetry(allowed)
	if !allowed {
		b.logger.Warn("retry budget exhausted: not retrying", slog.String("app", b.app), slog.String("upstream", in.upstream))
	}
	return allowed
}

// doneBody ends its attempt (in flight until then, for least_requests and p2c) when the response body is
// closed.
type doneBody struct {
	io.ReadCloser
	a      *upstream.Attempt
	req    *http.Request
	status int
	closed bool
}

func (d *doneBody) Close() error {
	err := d.ReadCloser.Close()
	if !d.closed {
		d.closed = true
		d.a.Done(d.req.Context(), nil, d.status)
	}
	return err
}
