package httpproxy

import (
	"context"
	"net/http"

	"github.com/switchyard/switchyard/adapters/httpproxy/internal/h1"
	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/reqinfo"
)

// The lane's loop serves an app of several instances as its balancer does (balancer.go): each exchange
// is an attempt on the instance the Set picks (Proxy.Attempt), sent on that instance's h1 client; an
// attempt that fails before its answer goes to another instance when the balancer would send it there
// (balancer.again), and the last failure is answered as the balancer's is, an instanceError naming the
// instance. The loop takes such an app (Proxy.loopBal) only when nothing it sends depends on the
// instance: the client's Host goes out (host_header=client, the default; the instances share their base
// path), and the policy picks without looking at the request (not hash). An exchange the loop hands to
// the handler chain after sending it (Resume) goes on there as the balancer would, on the instances not
// yet tried.

// allFast says every instance has the h1 client (http:// and unix:// apps on the fast path).
func allFast(insts []*instance) bool {
	for _, in := range insts {
		if in.fast == nil {
			return false
		}
	}
	return true
}

// loopAttempt is attempt n of an exchange the loop carries to an app of several instances: a on in,
// after the instances tried.
type loopAttempt struct {
	b          *balancer
	a          *upstream.Attempt
	in         *instance
	n          int
	tried      []*upstream.Instance
	idempotent bool
}

// End implements fastlane.Attempt.
func (t *loopAttempt) End(err error, status int, gone bool) { attempt{t.a}.End(err, status, gone) }

// Upstream implements fastlane.InstanceAttempt.
func (t *loopAttempt) Upstream() fastlane.LoopUpstream { return loopUpstream{t.in.fast} }

// Name implements fastlane.InstanceAttempt: the instance as the access log names it.
func (t *loopAttempt) Name() string { return t.in.upstream }

// Next implements fastlane.InstanceAttempt as the balancer goes on after a failed attempt.
func (t *loopAttempt) Next(err error, bodySent bool) (fastlane.InstanceAttempt, error) {
	next, final := t.next(context.Background(), err, bodySent)
	if next == nil {
		return nil, final // (a typed nil would not compare equal to nil)
	}
	return next, nil
}

func (t *loopAttempt) next(ctx context.Context, err error, bodySent bool) (*loopAttempt, error) {
	b := t.b
	lastErr := &instanceError{upstream: t.in.upstream, attempts: t.n, err: err}
	tried := append(t.tried[:len(t.tried):len(t.tried)], t.a.Instance)
	if !b.again(ctx, t.a, t.in, err, t.n, b.retries > 0 && len(b.insts) > 1, t.idempotent, bodySent) {
		return nil, lastErr
	}
	a, aerr := b.set.Acquire(nil, tried)
	if aerr != nil {
		return nil, lastErr // every other instance is unavailable: the real failure is the last one
	}
	return &loopAttempt{b: b, a: a, in: b.insts[a.Instance.Index()], n: t.n + 1, tried: tried, idempotent: t.idempotent}, nil
}

// firstLoopAttempt starts an exchange of the loop on the instance b picks (err: none may be tried, and
// the handler chain's balancer answers it).
func (b *balancer) firstLoopAttempt(idempotent bool) (*loopAttempt, error) {
	a, err := b.set.Acquire(nil, nil)
	if err != nil {
		return nil, err
	}
	b.set.Budget().Request() // (the balancer counts a request it does not serve too: the chain's does)
	return &loopAttempt{b: b, a: a, in: b.insts[a.Instance.Index()], n: 1, idempotent: idempotent}, nil
}

// sendOn sends r, whose attempt t failed with err after the loop handed it over, on to the instances
// the balancer would still try, as the direct path writes it (d); it returns the answer and its
// attempt, or the failure to answer with.
func (t *loopAttempt) sendOn(r *http.Request, d *direct, err error) (*http.Response, *upstream.Attempt, error) {
	guard := upstream.NewBodyGuard(r.Body) // the body, unread by the loop's attempts, for any of them
	for {
		next, final := t.next(r.Context(), err, r.ContentLength > 0)
		if next == nil {
			return nil, nil, final
		}
		t = next
		reqinfo.From(r.Context()).SetUpstream(t.in.upstream)
		out := *r
		if r.Body != nil {
			out.Body = guard.Attempt()
		}
		res, rerr := t.in.fast.RoundTripOutgoing(&out, d, t.idempotent)
		if rerr == nil {
			return res, t.a, nil
		}
		err = rerr
	}
}

// loopClient is the h1 client whose rules the loop follows for p (nil: the loop does not carry p's
// exchanges): the only instance's, or with a balancer the loop carries the first instance's (every
// instance's client is built with the same options).
func (p *Proxy) loopClient() *h1.Transport {
	switch {
	case p.noDirect:
		return nil
	case p.fast != nil:
		return p.fast
	case p.loopBal != nil:
		return p.insts[0].fast
	}
	return nil
}
