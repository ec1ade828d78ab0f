package httpproxy

import (
	"net"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/switchyard/switchyard/adapters/httpproxy/internal/h1"
	"github.com/switchyard/switchyard/internal/hopbyhop"
	"github.com/switchyard/switchyard/internal/relay"
	"github.com/switchyard/switchyard/reqinfo"
)

// The direct path is "h1 round trip + relay": direct is the relay.Transport whose RoundTrip writes the
// outgoing head straight from the incoming request on the h1 client, and internal/relay, the one response
// relay of every app kind, writes the answer. For an HTTP head the relay copies the fields as sent
// (Content-Length included) and, the h1 body not saying when its next read would wait, flushes as
// ReverseProxy does (streamed answers after every write, the rest by the server's buffering), so the
// answer is the ReverseProxy path's byte for byte at the allocation count the path had with its own
// writer (bench/results/2026-12-06-relay.md).
//
// The direct path serves the requests that would end on the h1 fast path (one instance, its health
// checks and breaker counting each exchange as the balancer does: attempt.go; or several, balanced as
// the balancer balances them: balanced.go; plain HTTP/1.1 to an
// http:// or unix:// app, no upgrade, no Expect, a small body of known length, an ordinary path and
// query) without httputil.ReverseProxy: the outgoing head is written straight from the incoming request
// and the response head copied straight into the ResponseWriter, skipping the request clone, the header
// map copies and the hop-by-hop deletions on copies. What the app and the client see is
// what the ReverseProxy path gives them (TestDirectPathMatchesReverseProxy checks it byte for byte,
// headers compared as sets since both write them in map order):
//
//   - request: hop-by-hop fields (Connection, Proxy-Connection, Keep-Alive, Proxy-Authenticate,
//     Proxy-Authorization, Te, Trailer, Transfer-Encoding, Upgrade) and the fields the Connection field
//     names are not sent; "Te: trailers" is sent when the client's Te has the trailers token; the client's
//     Forwarded and X-Forwarded-* are replaced by setForwarded's values; no User-Agent unless the client
//     sent one; Host as the host_header option says; the path joined under the app's base path.
//   - response: hop-by-hop fields and those its Connection field names are dropped, the rest added to
//     the ResponseWriter's header; 1xx answers forwarded; trailers announced and set; event streams and
//     bodies of unknown length flushed as they arrive (the relay's part); a failure before the head goes
//     to ReverseProxy's error handler, a failed body copy is the relay's (one line on the app's logger,
//     the head and bytes so far flushed, the response aborted with http.ErrAbortHandler).
type direct struct {
	p *Proxy
	w http.ResponseWriter
	r *http.Request
	// conn holds the canonical names the client's Connection field lists (nil without one).
	conn []string
}

// directEligible reports whether r takes the direct path: the cases where ReverseProxy would hand the
// h1 fast path a request it serves, minus rare shapes (upgrade tokens, Expect, request trailers, a query
// ReverseProxy would rewrite, a raw path) that stay on the ReverseProxy path.
func (p *Proxy) directEligible(r *http.Request) bool {
	if r.Method == http.MethodConnect || len(r.Trailer) > 0 || r.URL.RawPath != "" || r.URL.Opaque != "" ||
		r.URL.ForceQuery || !strings.HasPrefix(r.URL.Path, "/") {
		return false
	}
	if r.ContentLength < 0 || r.ContentLength > p.directClient().MaxBody() {
		return false
	}
	if r.ContentLength == 0 && r.Body != nil && r.Body != http.NoBody {
		return false
	}
	h := r.Header
	if _, ok := h["Upgrade"]; ok {
		return false
	}
	if _, ok := h["Expect"]; ok {
		return false
	}
	if !cleanQuery(r.URL.RawQuery) {
		return false
	}
	host := p.target.Host
	if p.clientHost {
		host = r.Host
	}
	return h1.ValidHost(host)
}

// cleanQuery reports whether ReverseProxy would forward the raw query as is (no ';', every '%' a valid
// escape): otherwise it re-encodes it, and the request stays on that path.
func cleanQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		switch q[i] {
		case ';':
			return false
		case '%':
			if i+2 >= len(q) || !isHex(q[i+1]) || !isHex(q[i+2]) {
				return false
			}
			i += 2
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// joinPath is the outgoing path: r's path under the app's base path, as ReverseProxy's SetURL joins them.
func (p *Proxy) joinPath(path string) string {
	base := p.target.Path
	switch {
	case base == "":
		return path
	case strings.HasSuffix(base, "/"):
		return base + path[1:]
	}
	return base + path
}

// AppendHead writes the request line and fields (h1.Outgoing).
func (d *direct) AppendHead(b []byte) ([]byte, error) {
	r, p := d.r, d.p
	b = append(b, r.Method...)
	b = append(b, ' ')
	u := len(b)
	b = h1.AppendRequestTarget(b, p.joinPath(r.URL.Path), r.URL.RawQuery)
	for _, c := range b[u:] {
		if c <= ' ' || c == 0x7f {
			return b, errBadTarget
		}
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	if p.clientHost {
		b = append(b, r.Host...)
	} else {
		b = append(b, p.target.Host...)
	}
	b = append(b, "\r\n"...)
	var err error
	h := r.Header
	if ua, ok := h["User-Agent"]; ok && len(ua) > 0 && ua[0] != "" && !hopbyhop.In(d.conn, "User-Agent") {
		if b, err = h1.AppendField(b, "User-Agent", ua[:1]); err != nil {
			return b, err
		}
	}
	for k, vv := range h {
		switch k {
		case "Host", "User-Agent", "Content-Length", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto":
			continue
		}
		if hopbyhop.Is(k) || d.conn != nil && hopbyhop.In(d.conn, k) {
			continue
		}
		if b, err = h1.AppendField(b, k, vv); err != nil {
			return b, err
		}
	}
	if te := h["Te"]; len(te) > 0 && hasToken(te, "trailers") {
		b = append(b, "Te: trailers\r\n"...)
	}
	xff, host, proto := forwarded(r)
	if xff != "" {
		if b, err = h1.AppendField(b, "X-Forwarded-For", []string{xff}); err != nil {
			return b, err
		}
	}
	if host != "" {
		if b, err = h1.AppendField(b, "X-Forwarded-Host", []string{host}); err != nil {
			return b, err
		}
	}
	return h1.AppendField(b, "X-Forwarded-Proto", []string{proto})
}

var errBadTarget = &badTarget{}

type badTarget struct{}

func (*badTarget) Error() string { return "h1: control character or space in the request URL" }

// hasToken reports whether the comma-separated values vv hold token (ASCII case-insensitive), as
// httpguts.HeaderValuesContainsToken.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

// Got1xx forwards an informational answer as ReverseProxy does (h1.Outgoing).
func (d *direct) Got1xx(code int, hdr textproto.MIMEHeader) error {
	relay.Forward1xx(d.w, code, hdr)
	return nil
}

// serveDirect proxies r on the direct path: the h1 round trip (RoundTrip), then the one response relay
// writes the answer with the HTTP adapter's options (p.relay: the head copied as sent, no spooling).
func (p *Proxy) serveDirect(w http.ResponseWriter, r *http.Request) {
	relay.Serve(w, r, &direct{p: p, w: w, r: r, conn: hopbyhop.Listed(r.Header)}, &p.relay)
}

// RoundTrip sends r to the app on the h1 client and returns its answer (relay.Transport). A failure
// before the head goes to the error handler of the ReverseProxy path, and RoundTrip returns nil.
func (d *direct) RoundTrip(w http.ResponseWriter, r *http.Request) *http.Response {
	p := d.p
	replay := false
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		replay = true
	default:
		_, replay = r.Header["Idempotency-Key"]
		replay = replay && !hopbyhop.In(d.conn, "Idempotency-Key")
	}
	if b := p.directBal; b != nil {
		return d.balanced(w, r, b, replay)
	}
	a, err := p.acquire(r)
	if err != nil {
		p.rp.ErrorHandler(w, p.outRequest(r), err)
		return nil
	}
	if a != nil {
		reqinfo.From(r.Context()).SetUpstream(p.upstream) // as the balancer sets it: once an instance is taken
	}
	res, err := p.fast.RoundTripOutgoing(r, d, replay)
	if err != nil {
		if a != nil {
			a.Done(r.Context(), err, 0)
		}
		p.rp.ErrorHandler(w, p.outRequest(r), err)
		return nil
	}
	countBody(res, r, a)
	return res
}

// outRequest is the request the error handler sees on the ReverseProxy path (its outgoing request): the
// path joined under the base path, the Host sent. Only built on failure.
func (p *Proxy) outRequest(r *http.Request) *http.Request {
	out := new(http.Request)
	*out = *r
	u := *r.URL
	u.Scheme, u.Host, u.Path = p.target.Scheme, p.target.Host, p.joinPath(r.URL.Path)
	out.URL = &u
	if !p.clientHost {
		out.Host = ""
	}
	return out
}

// forwarded computes X-Forwarded-For/-Host/-Proto as setForwarded does.
func forwarded(in *http.Request) (xff, host, proto string) {
	peer, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		peer = ""
	}
	xff = strings.Join(in.Header["X-Forwarded-For"], ", ")
	switch {
	case xff != "" && peer != "":
		xff += ", " + peer
	case peer != "":
		xff = peer
	}
	host = in.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = in.Host
	}
	proto = in.Header.Get("X-Forwarded-Proto")
	switch {
	case proto != "":
	case in.TLS != nil:
		proto = "https"
	default:
		proto = "http"
	}
	return xff, host, proto
}
