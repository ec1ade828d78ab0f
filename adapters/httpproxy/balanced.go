package httpproxy

import (
	"context"
	"net/http"

	"github.com/switchyard/switchyard/adapters/httpproxy/internal/h1"
	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/reqinfo"
)

// The direct path and the lane's loop serve an app of several instances as its balancer serves it on
// the ReverseProxy path (balancer.go): each exchange is an attempt on the instance the Set picks
// (balancer.first), sent on that instance's h1 client; an attempt that fails before its answer goes to
// another instance when the balancer would send it there (balancer.again), and the last failure is
// answered as the balancer's is, an instanceError naming the instance. They take such an app
// (Proxy.directBal) only when nothing they send depends on the instance: the client's Host goes out
// (host_header=client, the default; the instances share their base path), and the policy picks without
// looking at the request (not hash). An exchange the loop hands to the handler chain after sending it
// (Resume) goes on there as the balancer would, on the instances not yet tried.

// allFast says every instance has the h1 client (http:// and unix:// apps on the fast path).
func allFast(insts []*instance) bool {
	for _, in := range insts {
		if in.fast == nil {
			return false
		}
	}
	return true
}

// balancedAttempt is attempt n of an exchange the direct path or the loop sends to an app of several
// instances: a on in, after the instances tried.
type balancedAttempt struct {
	b          *balancer
	a          *upstream.Attempt
	in         *instance
	n          int
	tried      []*upstream.Instance
	idempotent bool
}

// End implements fastlane.Attempt.
func (t *balancedAttempt) End(err error, status int, gone bool) { attempt{t.a}.End(err, status, gone) }

// Upstream implements fastlane.InstanceAttempt.
func (t *balancedAttempt) Upstream() fastlane.LoopUpstream { return loopUpstream{t.in.fast} }

// Name implements fastlane.InstanceAttempt: the instance as the access log names it.
func (t *balancedAttempt) Name() string { return t.in.upstream }

// Next implements fastlane.InstanceAttempt as the balancer goes on after a failed attempt.
func (t *balancedAttempt) Next(err error, bodySent bool) (fastlane.InstanceAttempt, error) {
	next, final := t.next(context.Background(), err, bodySent)
	if next == nil {
		return nil, final // (a typed nil would not compare equal to nil)
	}
	return next, nil
}

func (t *balancedAttempt) next(ctx context.Context, err error, bodySent bool) (*balancedAttempt, error) {
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
	return &balancedAttempt{b: b, a: a, in: b.insts[a.Instance.Index()], n: t.n + 1, tried: tried, idempotent: t.idempotent}, nil
}

// first starts an exchange on the instance b picks (err: none may be tried: the balancer's
// NoInstanceError).
func (b *balancer) first(idempotent bool) (*balancedAttempt, error) {
	a, err := b.set.Acquire(nil, nil)
	if err != nil {
		return nil, err
	}
	b.set.Budget().Request() // (the balancer counts one it finds no instance for too: the loop leaves those to it)
	return &balancedAttempt{b: b, a: a, in: b.insts[a.Instance.Index()], n: 1, idempotent: idempotent}, nil
}

// sendOn sends r, whose attempt t failed with err (having taken some of r's body: consumed), on to the
// instances the balancer would still try, as the direct path writes it (d), each attempt reading the
// body through guard; it returns the answer and its attempt, or the failure to answer with.
func (t *balancedAttempt) sendOn(r *http.Request, d *direct, guard *upstream.BodyGuard, err error, consumed bool) (*http.Response, *upstream.Attempt, error) {
	for {
		next, final := t.next(r.Context(), err, consumed)
		if next == nil {
			return nil, nil, final
		}
		t = next
		res, took, rerr := t.send(r, d, guard)
		if rerr == nil {
			return res, t.a, nil
		}
		err, consumed = rerr, took
	}
}

// send sends r on t's instance as the direct path writes it (d), its body read through guard; on a
// failure, consumed says the attempt took some of the body, as the balancer's guard tells it.
func (t *balancedAttempt) send(r *http.Request, d *direct, guard *upstream.BodyGuard) (_ *http.Response, consumed bool, _ error) {
	reqinfo.From(r.Context()).SetUpstream(t.in.upstream)
	out := *r
	var body *upstream.AttemptBody
	if r.Body != nil && r.Body != http.NoBody {
		body = guard.Attempt()
		out.Body = body
	}
	res, err := t.in.fast.RoundTripOutgoing(&out, d, t.idempotent)
	if err != nil && body != nil {
		consumed = body.Detach()
	}
	return res, consumed, err
}

// balanced is RoundTrip of the direct path to an app of several instances (b: p.directBal).
func (d *direct) balanced(w http.ResponseWriter, r *http.Request, b *balancer, replay bool) *http.Response {
	p := d.p
	t, err := b.first(replay)
	if err != nil {
		p.rp.ErrorHandler(w, p.outRequest(r), err)
		return nil
	}
	guard := upstream.NewBodyGuard(r.Body)
	res, consumed, err := t.send(r, d, guard)
	at := t.a
	if err != nil {
		res, at, err = t.sendOn(r, d, guard, err, consumed)
	}
	if err != nil {
		p.rp.ErrorHandler(w, p.outRequest(r), err)
		return nil
	}
	countBody(res, r, at)
	return res
}

// directClient is the h1 client whose rules the direct path, the express path and the lane's loop follow
// for p (nil: none of them serves p): the only instance's, or with directBal the first instance's (every
// instance's client is built with the same options).
func (p *Proxy) directClient() *h1.Transport {
	switch {
	case p.noDirect:
		return nil
	case p.fast != nil:
		return p.fast
	case p.directBal != nil:
		return p.insts[0].fast
	}
	return nil
}
