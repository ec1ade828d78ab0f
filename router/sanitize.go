package router

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/internal/headscan"
)

// SanitizeConfig configures Sanitize.
type SanitizeConfig struct {
	// TrustedProxies are the peers whose forwarding headers are kept.
	TrustedProxies []netip.Prefix
	// MaxBodySize limits request bodies; 0 means unlimited.
	MaxBodySize int64
	// EncodedSlash lets a path holding "%2F" through (when it needs no cleaning), with RawPath set to its
	// escaped form; the handler after Sanitize must be a Table, which refuses it for every route without
	// Route.EncodedSlash. Off, "%2F" gets 400 like the other refused encodings.
	EncodedSlash bool
}

// forwardingHeader reports whether name (canonical) is one of the headers through which a client could
// claim another identity, scheme, host or mount point. From an untrusted peer they are deleted, so no
// application ever believes a spoofed value. Every header whose name starts with "X-Forwarded-" is treated
// the same way (X-Forwarded-User, -Email, -Prefix, -Uri, ... set by auth proxies and path-rewriting
// proxies). A switch, not a map: every request's every header name goes through it, and most match none.
func forwardingHeader(name string) bool {
	switch name {
	case "Forwarded", "X-Forwarded", "Forwarded-For", "X-Url-Scheme",
		"X-Real-Ip", "True-Client-Ip", "X-Client-Ip", "X-Cluster-Client-Ip",
		"Cf-Connecting-Ip", "Fastly-Client-Ip",
		"X-Original-Url", "X-Rewrite-Url", "X-Original-Uri", "X-Original-Host", "X-Host",
		// Mount-point headers: an app that takes its SCRIPT_NAME from them (the X-Script-Name reverse-proxy
		// recipe for Flask/Django, werkzeug ProxyFix's X-Forwarded-Prefix) would build links and, worse,
		// route under a prefix the client chose. gunicorn's own SCRIPT_NAME header is caught by the '_'
		// rule (dropClaims).
		"X-Script-Name", "Script-Name":
		return true
	}
	return strings.HasPrefix(name, forwardingPrefix)
}

// forwardingPrefix marks a forwarding header by name prefix (see forwardingHeader).
const forwardingPrefix = "X-Forwarded-"

// ownHeaders are request headers the gateway itself sets before the front door (request id, trace
// context): a client's Connection field may not name them away.
var ownHeaders = map[string]bool{"X-Request-Id": true, "Traceparent": true, "Tracestate": true}

// Sanitize returns the front-door middleware that every request passes before routing:
//
//   - CONNECT gets 405: the gateway is no forward proxy and never opens tunnels (an HTTP/2 extended
//     CONNECT, RFC 8441, which carries a :protocol, is left to the route);
//   - the request-target's escapes are checked as the client sent them (r.RequestURI: RawPath is empty
//     whenever Go's default escaping matches, "%2561" and "%5C" included): encoded '.', '/', '\' and
//     control characters get 400 (refusedEscape; docs/paths.md lists them), except "%2F" with
//     EncodedSlash; then the path is canonicalised with CleanPath (400 when refused, double encoding
//     included) and RawPath cleared (or, for a let-through "%2F", set to the canonical escaped form), so
//     routing and the application see one and the same path;
//   - a cleaned path that another server would still read as climbing or separating gets 400 too
//     (ambiguousPath): dot segments with parameters ("/public/..;/admin", read as ".." by Tomcat and Jetty),
//     invalid UTF-8 (overlong "%c0%ae" is '.' to old decoders: the IIS Unicode traversal, CVE-2000-0884),
//     and compatibility characters that NFKC-normalising apps fold into '.', '/' or '\' ("／", "．", "‥");
//   - an invalid Host header gets 400, and so does an empty one in HTTP/1.1 and HTTP/2 (RFC 9112 section
//     3.2 requires one; nginx answers 400 too). HTTP/1.0 requests may come without a Host (health
//     checkers such as HAProxy's httpchk send none): they match no host route, and an HTTP app gets its
//     own address as Host and no X-Forwarded-Host, on every proxy path;
//   - an HTTP/1.0 request that carried Transfer-Encoding gets 400 and the connection closes (RFC 9112
//     section 6.1: faulty framing; net/http deletes the field, so the listener marks such heads:
//     internal/headscan, gateway.ScanHeads). On a connection the scan does not read (TLS) every HTTP/1.0
//     request closes its connection after the answer instead: a chunked body behind it is never read;
//   - forwarding headers (forwardingHeader, every X-Forwarded-* name among them) are deleted unless the peer is a
//     trusted proxy;
//   - header names containing '_' are deleted: CGI-style apps map "X_Forwarded_For" and "X-Forwarded-For"
//     to the same variable, which would let a client smuggle a forwarding header past the check above;
//     both rules apply to request trailers too (declared ones at once, received ones at the body's end);
//   - the Proxy header is deleted from everyone (httpoxy, CVE-2016-5385 and its siblings): it has no
//     legitimate use, and every app server that maps headers to CGI-style variables turns it into
//     HTTP_PROXY, the variable HTTP client libraries take their outgoing proxy from (gunicorn puts it in
//     the WSGI environ, for instance; the CGI-family adapters drop it as well);
//   - the Connection field is processed here, as RFC 9110 section 7.6.1 asks of a proxy: the fields it
//     names are deleted (except the gateway's own, ownHeaders) and only close, keep-alive and upgrade stay
//     in it. Otherwise a client sending "Connection: X-Forwarded-Prefix" (hop-by-hop header abuse) would
//     have the reverse proxy further down delete headers the gateway adds after this point;
//   - Upgrade is allowed for "websocket" only; any other token (h2c in particular, which would hand the client
//     a raw HTTP/2 tunnel past the route table: h2c smuggling) is removed along with HTTP2-Settings, and the
//     request goes on as plain HTTP;
//   - a request with a chunked body is answered with Connection: close. Go's server silently drops a
//     Content-Length that arrives next to Transfer-Encoding: chunked; closing the connection afterwards means
//     bytes a CL-parsing front end counted differently can never be read as a second request (CL.TE
//     request smuggling, RFC 9112 section 6.1). A malformed chunked body, or an HTTP/2 body whose DATA
//     frames contradict its content-length, fails its reads with an error wrapping
//     failure.ErrBadRequestBody (400, not 502);
//   - an HTTP/1.0 request with a body is answered with Connection: close too. net/http deletes and ignores
//     Transfer-Encoding on HTTP/1.0 and frames the body by Content-Length, so the handler cannot tell that
//     both were sent; RFC 9112 section 6.1 calls that framing faulty and requires the connection to close
//     after the message, or bytes a chunked-reading front end took for the body would be served as a
//     request of their own (a keep-alive HTTP/1.0 TE.CL desync);
//   - a body declared larger than MaxBodySize gets 413 before anything is sent on; a chunked body is cut
//     there (http.MaxBytesReader, whose error the adapters turn into 413).
//
// "Expect: 100-continue" is answered by the gateway itself (net/http sends the 100 when the body is first
// read) and not passed on. Whenever a request that announced it is refused with Connection: close without its
// body being read (here, or by middleware and apps further in), the connection's read side is ended at
// once: the client rightly waits for a 100 that never comes, and net/http would otherwise wait for the
// unread body, with no deadline, before closing.
func Sanitize(cfg SanitizeConfig) func(http.Handler) http.Handler {
	trusted := append([]netip.Prefix(nil), cfg.TrustedProxies...)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodConnect && r.Header.Get(":protocol") == "" {
				w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
				refuse(w, r, http.StatusMethodNotAllowed, "405 CONNECT is not served: this is not a forward proxy")
				return
			}
			raw := requestPath(r)
			encodedSlash, err := checkEscapes(raw, cfg.EncodedSlash)
			clean := r.URL.Path
			if err == nil {
				clean, err = CleanPath(r.URL.Path)
			}
			if err == nil && ambiguousPath(clean) {
				err = ErrBadPath
			}
			escaped := ""
			if err == nil && encodedSlash {
				// Forwarded as sent, so it must need no cleaning: a dot segment or an empty one made of
				// encoded slashes ("a%2F..%2Fb") would mean one path to the router and another to an app that
				// decodes them.
				if clean != r.URL.Path {
					err = ErrBadPath
				} else {
					_, escaped, err = slashForms(raw)
				}
			}
			if err != nil {
				refuse(w, r, http.StatusBadRequest, "400 bad request path")
				return
			}
			if _, err := CanonicalHost(r.Host); err != nil {
				refuse(w, r, http.StatusBadRequest, "400 bad Host header")
				return
			}
			if r.Host == "" && r.ProtoAtLeast(1, 1) {
				refuse(w, r, http.StatusBadRequest, "400 empty Host header")
				return
			}
			if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
				sc := headscan.From(r.Context())
				if sc != nil && sc.Flagged(r.Method, r.RequestURI) {
					refuse(w, r, http.StatusBadRequest, "400 Transfer-Encoding in an HTTP/1.0 request")
					return
				}
				if sc == nil {
					// A connection the head scan does not read (TLS): a Transfer-Encoding field would be
					// invisible here, and a chunked body behind this request would be read as requests of
					// its own (a chunk-size line "5 /admin HTTP/1.1" parses as one). Closing after the
					// answer leaves nothing to read.
					w.Header().Set("Connection", "close")
				}
			}
			if cfg.MaxBodySize > 0 && r.ContentLength > cfg.MaxBodySize {
				refuse(w, r, http.StatusRequestEntityTooLarge, "413 request body larger than "+strconv.FormatInt(cfg.MaxBodySize, 10)+" bytes")
				return
			}
			if clean != r.URL.Path || r.URL.RawPath != escaped {
				r.URL.Path = clean
				r.URL.RawPath = escaped
			}
			untrusted := !peerTrusted(trusted, r.RemoteAddr)
			dropClaims(r.Header, untrusted)
			if len(r.Trailer) > 0 {
				dropClaims(r.Trailer, untrusted)
				if len(r.Trailer) == 0 {
					delete(r.Header, "Trailer")
				}
			}
			if up, ok := r.Header["Upgrade"]; ok && !(len(up) == 1 && strings.EqualFold(strings.TrimSpace(up[0]), "websocket")) {
				delete(r.Header, "Upgrade")
			}
			delete(r.Header, "Http2-Settings")
			if _, ok := r.Header["Connection"]; ok {
				connectionOptions(r.Header)
			}
			if len(r.TransferEncoding) > 0 {
				w.Header().Set("Connection", "close")
				r.Body = &framedBody{ReadCloser: r.Body, req: r, untrusted: untrusted}
			} else if r.ProtoMajor == 2 && r.Body != nil && r.Body != http.NoBody {
				r.Body = &framedBody{ReadCloser: r.Body, req: r, untrusted: untrusted}
			} else if r.ProtoMajor == 1 && r.ProtoMinor == 0 && r.ContentLength > 0 {
				w.Header().Set("Connection", "close")
			}
			var waiting *expectBody
			if expectsContinue(r) {
				waiting = &expectBody{ReadCloser: r.Body}
				r.Body = waiting
				// The expectation is this hop's: net/http sends the client its 100 Continue when the body is
				// first read. Passed on, the app would answer a 100 of its own, which the proxy forwards as
				// a second interim response the client never asked for.
				delete(r.Header, "Expect")
			}
			if cfg.MaxBodySize > 0 && r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, cfg.MaxBodySize)
			}
			next.ServeHTTP(w, r)
			if waiting != nil && !waiting.read.Load() && hasToken(w.Header().Get("Connection"), "close") {
				// Refused further in without reading the body: net/http would now wait, with no deadline,
				// for a body the client holds back until it sees a 100 Continue that never comes.
				_ = http.NewResponseController(w).SetReadDeadline(time.Now())
			}
		})
	}
}

// ambiguousPath reports whether a path CleanPath accepted would still mean a different path to some server
// behind the gateway: a segment whose part before ';' is "." or "..", or empty and followed by more path
// (path parameters hide a dot segment or an extra slash from the router, and Tomcat, Jetty and Spring
// strip them before resolving: "/public/..;/admin" reaches /admin there; a last segment such as
// "/shop/;jsessionid=1" is ordinary servlet URL rewriting and passes), invalid UTF-8 (overlong forms of '.' and '/' such as "%c0%ae" and "%c0%af"), and
// runes whose NFKC form holds '.', '/' or '\\' (fullwidth and small forms, dot leaders, "℀"), which an app
// normalising Unicode would turn into separators or dot segments the router never saw. One pass, no
// allocation; the common ASCII path without ';' only pays the scan.
func ambiguousPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == ';':
			start := strings.LastIndexByte(p[:i], '/') + 1
			seg := p[start:i]
			if seg == "." || seg == ".." || seg == "" && strings.IndexByte(p[i:], '/') >= 0 {
				return true
			}
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(p[i:])
			if r == utf8.RuneError || foldsToSeparator(r) {
				return true
			}
			i += size - 1
		}
	}
	return false
}

// foldsToSeparator reports whether r's compatibility decomposition (NFKC) contains '.', '/' or '\\'.
func foldsToSeparator(r rune) bool {
	switch r {
	case '\u2024', '\u2025', '\u2026', // one dot leader, two dot leader, horizontal ellipsis
		'\uFE19', '\uFE30', '\uFE52', '\uFF0E', // vertical ellipsis, vertical two dot leader, small and fullwidth full stop
		'\uFF0F', '\uFE68', '\uFF3C', // fullwidth solidus, small and fullwidth reverse solidus
		'\u2100', '\u2101', '\u2105', '\u2106', // account of, addressed to the subject, care of, cada una
		'\u33C2', '\u33C7', '\u33D8', '\U0001F100': // squared a.m., Co., p.m.; digit zero full stop
		return true
	}
	return '\u2488' <= r && r <= '\u249B' // digit full stops 1. to 20.
}

// expectsContinue reports whether r announced a body it holds back until "100 Continue" (RFC 9110 10.1.1).
func expectsContinue(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody && r.ProtoAtLeast(1, 1) &&
		strings.EqualFold(r.Header.Get("Expect"), "100-continue")
}

// expectBody records whether anything read the body of a request waiting for "100 Continue".
// The flag is atomic: a proxy's transport may still be reading in its own goroutine when the handler returns.
type expectBody struct {
	io.ReadCloser
	read atomic.Bool
}

func (b *expectBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.ReadCloser.Read(p)
}

// hasToken reports whether the comma-separated list v holds token, case-insensitively.
func hasToken(v, token string) bool {
	for _, t := range strings.Split(v, ",") {
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// refuse answers status with Connection: close. For a request waiting on "Expect: 100-continue" it also
// expires the connection's read deadline, so the server closes instead of waiting for a body the client
// will not send.
func refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	w.Header().Set("Connection", "close")
	if expectsContinue(r) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
	http.Error(w, msg, status)
}

// connectionOptions applies RFC 9110 section 7.6.1 to a request's header: every field the Connection
// field names is deleted, except the gateway's own (ownHeaders) and the framing fields net/http already
// acted on, and Connection keeps only close, keep-alive and (while an Upgrade is present) upgrade, the
// options net/http and the WebSocket proxying still read. Nothing further down can then be told to drop a
// header the gateway sets.
func connectionOptions(h http.Header) {
	if v := h["Connection"]; len(v) == 1 && (strings.EqualFold(v[0], "keep-alive") || strings.EqualFold(v[0], "close")) {
		return // what nearly every client sends: nothing to do, nothing to allocate
	}
	var keep []string
	for _, v := range h["Connection"] {
		for _, opt := range strings.Split(v, ",") {
			opt = strings.TrimSpace(opt)
			switch {
			case opt == "":
			case strings.EqualFold(opt, "close"), strings.EqualFold(opt, "keep-alive"):
				keep = append(keep, opt)
			case strings.EqualFold(opt, "upgrade"):
				if _, ok := h["Upgrade"]; ok {
					keep = append(keep, opt)
				}
			default:
				switch name := http.CanonicalHeaderKey(opt); name {
				case "Content-Length", "Transfer-Encoding", "Host":
				default:
					if !ownHeaders[name] {
						delete(h, name)
					}
				}
			}
		}
	}
	if len(keep) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(keep, ", ")}
}

// framedBody marks a request body whose framing the client got wrong: net/http's chunked reader and its
// HTTP/2 server fail such reads with plain errors (bad chunk size, bare LF, missing CRLF, forbidden
// trailer; DATA frames shorter than the declared content-length, an H2.CL mismatch), which a proxy would
// report as 502. Errors of the connection (timeouts, resets, end of stream) and the body limit pass
// unchanged; a client that went away is told apart by the request's context.
//
// At the end of the body it also applies the header rules to the trailer fields net/http has just
// filled in, so a forwarding header or an underscore name cannot arrive as a trailer either.
type framedBody struct {
	io.ReadCloser
	req       *http.Request
	untrusted bool
}

func (b *framedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && len(b.req.Trailer) > 0 {
		dropClaims(b.req.Trailer, b.untrusted)
	}
	if err != nil && err != io.EOF && badFraming(err) {
		err = fmt.Errorf("%w: %v", failure.ErrBadRequestBody, err)
	}
	return n, err
}

// dropClaims deletes from h the fields no app may take from this peer: names containing '_' and Proxy
// always, and the forwarding headers when the peer is not a trusted proxy.
func dropClaims(h http.Header, untrusted bool) {
	for name := range h {
		if strings.IndexByte(name, '_') >= 0 || name == "Proxy" ||
			untrusted && forwardingHeader(name) {
			delete(h, name)
		}
	}
}

func badFraming(err error) bool {
	var ne net.Error
	var mbe *http.MaxBytesError
	return !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) && !errors.As(err, &ne) &&
		!errors.As(err, &mbe) && !errors.Is(err, failure.ErrClientTimeout) && !errors.Is(err, net.ErrClosed) &&
		!errors.Is(err, http.ErrBodyReadAfterClose)
}

// PeerTrusted reports whether the connection's peer address lies in one of the trusted prefixes.
func peerTrusted(trusted []netip.Prefix, remoteAddr string) bool {
	if len(trusted) == 0 {
		return false
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ForwardingHeader reports whether name (canonical) is a forwarding header: one Sanitize deletes from a
// request, or keeps only from a trusted proxy.
func ForwardingHeader(name string) bool { return forwardingHeader(name) }
