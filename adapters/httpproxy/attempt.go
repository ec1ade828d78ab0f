package httpproxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/relay"
)

// The direct path, the express path and the lane's loops serve an app of one instance also when it has
// health checks or a circuit breaker (p.set): each exchange is then the balancer's one attempt on that
// instance (with one instance the balancer never retries, so its retry budget is never asked). The
// instance is acquired before anything is sent (one that may not be tried gets the balancer's 503, from
// the handler chain when the lane asked) and its attempt ends once, as the balancer ends it: at a failure
// before the answer's head (a client's departure counted as nothing), else when the answer's body is
// closed, with the answer's status. So the in-flight count, the passive failure count, the last error
// and the breaker (Health, /readyz) see the same exchanges on every path.

// acquire takes the attempt of an exchange of p (nil, nil when p counts none); err is the balancer's
// NoInstanceError.
func (p *Proxy) acquire(r *http.Request) (*upstream.Attempt, error) {
	if p.set == nil {
		return nil, nil
	}
	return p.set.Acquire(r, nil)
}

// cancelled is the context an attempt ended by the client's departure reports to Done.
var cancelled = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// attempt is an upstream.Attempt as the lane ends it (fastlane.Attempt). A nil attempt counts nothing.
type attempt struct{ a *upstream.Attempt }

// End implements fastlane.Attempt.
func (t attempt) End(err error, status int, gone bool) {
	if t.a == nil {
		return
	}
	ctx := context.Background()
	if gone {
		ctx = cancelled
	}
	t.a.Done(ctx, err, status)
}

// endOnError ends a on a failure before the answer's head: a departed client (context.Canceled, the
// express path's report of it) counts as nothing.
func (t attempt) endOnError(err error) { t.End(err, 0, errors.Is(err, context.Canceled)) }

// Attempt implements fastlane.LoopApp.
func (p *Proxy) Attempt(replay bool) (fastlane.Attempt, error) {
	if p.directBal != nil {
		la, err := p.directBal.first(replay)
		if err != nil {
			return nil, err // (not la: a nil *balancedAttempt is no nil Attempt)
		}
		return la, nil
	}
	a, err := p.acquire(nil)
	if err != nil || a == nil {
		return nil, err
	}
	return attempt{a}, nil
}

// countBody ends a (when not nil) as res's body closes, keeping the body's WaitNotifier (the relay's
// flushing of the direct path).
func countBody(res *http.Response, r *http.Request, a *upstream.Attempt) {
	if a == nil {
		return
	}
	d := &doneBody{ReadCloser: res.Body, a: a, req: r, status: res.StatusCode}
	if wn, ok := res.Body.(relay.WaitNotifier); ok {
		res.Body = waitingDoneBody{d, wn}
		return
	}
	res.Body = d
}

type waitingDoneBody struct {
	*doneBody
	relay.WaitNotifier
}

// countedAnswer is a simple answer of the express path whose attempt ends as it closes.
type countedAnswer struct {
	fastlane.Answer
	a *upstream.Attempt
}

func (c countedAnswer) Close() {
	status := c.Status() // (the answer is not to be used after its Close)
	c.Answer.Close()
	c.a.Done(context.Background(), nil, status)
}

// Revive implements adapters.Reviver: the instance reached at address is back in service
// (upstream.Set.Revive).
func (p *Proxy) Revive(address string) {
	if p.set == nil {
		return
	}
	for i, in := range p.insts {
		if in.dialAddr == address {
			p.set.Revive(i)
		}
	}
}
