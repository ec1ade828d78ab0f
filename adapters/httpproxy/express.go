package httpproxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"unsafe"

	"github.com/switchyard/switchyard/adapters/httpproxy/internal/h1"
	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/relay"
	"github.com/switchyard/switchyard/reqinfo"
)

// The express path (fastlane.ExpressApp): the direct path's exchange for a request the fast lane parsed,
// without an http.Request. The outgoing head is the one AppendHead writes for the same request as the
// front door and the route's mount (Exchange.Mount: router.StripPrefix, router.ScriptNameHeader) leave it
// (the same fields, X-Forwarded-* and Content-Length rules; fields in the client's order where
// AppendHead writes them in map order), sent by the h1 client's Express round trip; a simple
// answer goes back to the lane raw, anything else is finished by Rest in the app's place, as serveDirect
// would have finished it (TestFastLaneAnswersAsNetHTTP holds both paths to net/http's bytes).

// outgoingExtra bounds what the outgoing head adds to the incoming one: the request id, the
// X-Forwarded-* fields, a Host or Content-Length longer than the client's.
const outgoingExtra = 512

// outgoingBufs hold outgoing requests that do not fit after the incoming one in the lane's buffer.
var outgoingBufs = sync.Pool{New: func() any { b := make([]byte, 0, 12<<10); return &b }}

func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// Express implements fastlane.ExpressApp: it takes the requests serveDirect would serve.
func (p *Proxy) Express(x *fastlane.Exchange) (fastlane.Answer, http.Handler, bool) {
	h := x.Head
	if p.fast == nil || p.noDirect {
		return nil, nil, false
	}
	// The outgoing request is about the incoming one and the forwarding fields: written after the request
	// in the lane's buffer when it fits there, else in a pooled buffer (a larger body).
	b := x.Scratch[:0]
	if need := h.Size + len(x.Body) + outgoingExtra + x.Mount.Extra(); need > cap(b) {
		bp := outgoingBufs.Get().(*[]byte)
		defer outgoingBufs.Put(bp)
		if need > cap(*bp) {
			*bp = make([]byte, 0, need)
		}
		b = (*bp)[:0]
	}
	b, replay, ok := p.AppendOutgoing(b, x)
	if !ok {
		return nil, nil, false
	}
	at, err := p.acquire(nil)
	if err != nil {
		return nil, nil, false // the handler chain's direct path answers as the balancer does
	}
	a, pending, err := p.fast.Express(b, str(h.Method) == http.MethodHead, replay, x.Gone)
	switch {
	case err != nil:
		attempt{at}.endOnError(err)
		return nil, p.Failed(err), true
	case pending != nil:
		return nil, p.pendingHandler(pending, at, nil), true
	case at != nil:
		return countedAnswer{a, at}, nil, true
	}
	return a, nil, true
}

// AppendOutgoing implements fastlane.LoopApp: it appends to b the request the direct path sends for x
// (ok false: the direct path does not take x), and says whether it may be sent again on a stale
// connection. b should have room for x's head, body and outgoingExtra.
func (p *Proxy) AppendOutgoing(b []byte, x *fastlane.Exchange) (out []byte, replay, ok bool) {
	h := x.Head
	f := p.directClient()
	if f == nil || h.Query != nil && len(h.Query) == 0 || h.ContentLength > f.MaxBody() || !cleanQuery(str(h.Query)) {
		return b, false, false
	}
	host := p.target.Host
	if p.clientHost {
		host = str(h.Host)
	}
	if !h1.ValidHost(host) {
		return b, false, false
	}
	path, ok := x.Mount.Path(str(h.Path)) // router.StripPrefix's cut
	if !ok {
		return b, false, false
	}
	b = append(b, h.Method...)
	b = append(b, ' ')
	u := len(b)
	b = h1.AppendRequestTarget(b, p.joinPath(path), str(h.Query))
	for _, c := range b[u:] {
		if c <= ' ' || c == 0x7f {
			return b, false, false
		}
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	switch str(h.Method) {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		replay = true
	}
	hadLength, sawUA := false, false
	for i, f := range h.Fields[:h.NFields] {
		k := x.Keys[i]
		switch k {
		case "Host", "Connection", "X-Request-Id":
			continue
		case "Content-Length":
			hadLength = true
			continue
		case "User-Agent":
			// AppendHead writes the first User-Agent, when not empty, and no other.
			if !sawUA && len(f.Value) > 0 {
				b = append(b, "User-Agent: "...)
				b = append(b, f.Value...)
				b = append(b, "\r\n"...)
			}
			sawUA = true
			continue
		case "Idempotency-Key":
			replay = true
		}
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, f.Value...)
		b = append(b, "\r\n"...)
	}
	b = append(b, "X-Request-Id: "...)
	b = append(b, x.RequestID...)
	if x.Peer != "" {
		b = append(b, "\r\nX-Forwarded-For: "...)
		b = append(b, x.Peer...)
	}
	b = append(b, "\r\nX-Forwarded-Host: "...)
	b = append(b, h.Host...)
	b = append(b, "\r\nX-Forwarded-Proto: http\r\n"...)
	if m := x.Mount; m.Field != "" {
		// The lane takes no request with a mount-point field of its own: this is the only one.
		b = append(b, m.Field...)
		b = append(b, ": "...)
		b = append(b, m.Prefix...)
		b = append(b, "\r\n"...)
	}
	sendsLength := h.ContentLength > 0 || hadLength
	switch str(h.Method) {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		sendsLength = true
	}
	if sendsLength {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, h.ContentLength, 10)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, x.Body...)

	return b, replay, true
}

// Failed is the handler that answers an exchange that failed with err before its answer, as serveDirect
// does (the error handler's 502 or 504, or a departed client's 499), or with several instances as the
// balancer does (err names the instance that failed last).
func (p *Proxy) Failed(err error) http.Handler {
	name := p.upstream
	var ie *instanceError
	if errors.As(err, &ie) {
		name = ie.upstream
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqinfo.From(r.Context()).SetUpstream(name)
		p.rp.ErrorHandler(w, p.outRequest(r), err)
	})
}

// pendingHandler finishes a pending exchange as serveDirect would; it ends at (nil: none). With la (not
// nil: an app of several instances, at its attempt's), a failure goes on to other instances as the
// balancer's would.
func (p *Proxy) pendingHandler(pending *h1.Pending, at *upstream.Attempt, la *balancedAttempt) http.Handler {
	name := p.upstream
	if la != nil {
		name = la.in.upstream
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqinfo.From(r.Context()).SetUpstream(name)
		defer flushOnAbort(w, r)
		d := &direct{p: p, w: w, r: r}
		relay.Serve(w, r, pendingTransport{d: d, pending: pending, at: at, la: la}, &p.relay)
	})
}

// Resume implements fastlane.LoopApp: the handler that finishes an exchange the lane's loop sent on c
// and read read of, as serveDirect would, and ends its attempt.
func (p *Proxy) Resume(c net.Conn, read []byte, reused bool, a fastlane.Attempt) http.Handler {
	switch t := a.(type) {
	case attempt:
		return p.pendingHandler(p.fast.Resume(c, read, reused), t.a, nil)
	case *balancedAttempt:
		return p.pendingHandler(t.in.fast.Resume(c, read, reused), t.a, t)
	}
	return p.pendingHandler(p.fast.Resume(c, read, reused), nil, nil)
}

// LoopUpstream implements fastlane.LoopApp: the h1 client, when the direct path serves this app, or
// the first instance's when the loop carries the exchanges of an app of several (balanced.go).
func (p *Proxy) LoopUpstream() fastlane.LoopUpstream {
	if f := p.directClient(); f != nil {
		return loopUpstream{f}
	}
	return nil
}

// pendingTransport is the relay.Transport of a pending exchange: its answer, as RoundTripOutgoing's.
type pendingTransport struct {
	d       *direct
	pending *h1.Pending
	at      *upstream.Attempt
	la      *balancedAttempt // an app of several instances: at's
}

func (t pendingTransport) RoundTrip(w http.ResponseWriter, r *http.Request) *http.Response {
	res, err := t.pending.Finish(r, t.d)
	at := t.at
	if err != nil && t.la != nil {
		res, at, err = t.la.sendOn(r, t.d, upstream.NewBodyGuard(r.Body), err, r.ContentLength > 0) // (the loop sent the body; it ends the attempts that fail)
	} else if err != nil && at != nil {
		at.Done(r.Context(), err, 0)
	}
	if err != nil {
		t.d.p.rp.ErrorHandler(w, t.d.p.outRequest(r), err)
		return nil
	}
	countBody(res, r, at)
	return res
}

// Undelivered implements fastlane.ExpressApp with the relay's log line.
func (p *Proxy) Undelivered(method, path, upstream string, status int, clientGone bool, err error) {
	p.relay.LogUndeliveredBy(context.Background(), upstream, method, path, status, clientGone, err)
}
