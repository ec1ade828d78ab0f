package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/internal/hopbyhop"
	"github.com/switchyard/switchyard/internal/relay"
)

// The relayed path serves what the direct path does not take (balanced instances, https apps, h2c,
// fast_path=false, request bodies h1 leaves to its fallback, Expect) except protocol switches: the
// outgoing request is prepared here as httputil.ReverseProxy prepares it, sent on the app's RoundTripper
// (the h1 client, the guarded net/http Transport or the balancer), and the answer is written by
// internal/relay like every other answer. Requests asking for an upgrade go through ReverseProxy, whose
// tunnel runs them. TestDirectPathMatchesReverseProxy holds this path to ReverseProxy writing its own
// answers, on the h1 client, on net/http's Transport and behind the balancer.

// serveRelayed serves r on the relayed path (see above).
func (p *Proxy) serveRelayed(w http.ResponseWriter, r *http.Request) {
	// 1xx answers reach the client as they come, until the final answer is there (ReverseProxy's rule).
	var mu sync.Mutex
	done := false
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, fields textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			relay.Forward1xx(w, code, fields)
		}
		return nil
	}}
	// The clone carries the trace from the start: no second copy of the request to attach it.
	out := p.outgoing(httptrace.WithClientTrace(r.Context(), trace), r)
	if out.Body != nil {
		defer out.Body.Close()
	}
	res, err := p.rt.RoundTrip(out)
	mu.Lock()
	done = true
	mu.Unlock()
	if err == nil && res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		err = fmt.Errorf("backend tried to switch protocol %q when none was requested", res.Header.Get("Upgrade"))
	}
	if err != nil {
		p.failed(w, out, err)
		return
	}
	relay.Write(w, r, res, &p.relay)
}

// outgoing is r as ReverseProxy sends it on: a clone with context ctx whose empty body is nil (so the
// Transport may retry), whose body the Transport cannot close under the server, without the hop-by-hop
// fields and those r's Connection names (but with "Te: trailers" when the client accepts trailers),
// without the client's forwarding fields (p.rewrite extends the trusted ones), its query re-encoded when
// ReverseProxy would, rewritten by p.rewrite, with an empty User-Agent when the client sent none.
func (p *Proxy) outgoing(ctx context.Context, r *http.Request) *http.Request {
	out := r.Clone(ctx)
	if r.ContentLength == 0 {
		out.Body = nil
	}
	if out.Body != nil {
		out.Body = &unclosable{rc: out.Body}
	}
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	out.Close = false
	h := out.Header
	for _, k := range hopbyhop.Listed(h) {
		h.Del(k)
	}
	for k := range h {
		if hopbyhop.Is(k) {
			delete(h, k)
		}
	}
	if hasToken(r.Header["Te"], "trailers") {
		h.Set("Te", "trailers")
	}
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		delete(h, k)
	}
	if !cleanQuery(out.URL.RawQuery) {
		v, _ := url.ParseQuery(out.URL.RawQuery)
		out.URL.RawQuery = v.Encode()
	}
	pr := &httputil.ProxyRequest{In: r, Out: out}
	p.rewrite(pr)
	out = pr.Out
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header.Set("User-Agent", "")
	}
	return out
}

// unclosable keeps the Transport from closing the server's request body (the server owns it); once
// serveRelayed returned, a Transport still sending the body reads an error instead of a body that is no
// longer the handler's.
type unclosable struct {
	rc     io.ReadCloser
	closed atomic.Bool
}

func (u *unclosable) Read(b []byte) (int, error) {
	if u.closed.Load() {
		return 0, errBodyAfterReturn
	}
	return u.rc.Read(b)
}

func (u *unclosable) Close() error { u.closed.Store(true); return nil }

var errBodyAfterReturn = errors.New("httpproxy: request body read after the handler returned")
