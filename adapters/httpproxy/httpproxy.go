// Package httpproxy owns the HTTP adapter: applications reached over HTTP/1.1 on TCP (http://, https://)
// or on a unix socket (unix:///path.sock), with a tuned keep-alive pool per application; every answer but
// a protocol switch is written by internal/relay.
//
// What is sent on: the request as the router left it (cleaned path, sanitised headers), with hop-by-hop
// headers removed (ReverseProxy does this, including headers named in Connection), the client's Host kept
// (host_header=upstream sends the upstream's instead), and X-Forwarded-For/-Host/-Proto set from the
// connection: a trusted proxy's values (the router deletes untrusted ones) are extended, never replaced.
// The request body is streamed, never buffered. What comes back: the response streamed to the client,
// flushed at once for event streams and bodies of unknown length; 1xx answers forwarded; a WebSocket
// upgrade tunnelled (websocket=false refuses it by stripping the Upgrade header). A body whose app stalls
// past read_timeout, or fails, mid-way is aborted (http.ErrAbortHandler: never a clean end) with one log
// line on the app's logger (ReverseProxy's own log lines go there too, not to the default logger).
//
// Two paths, one relay: requests the h1 fast path serves on a single instance take the direct path
// (direct.go writes the outgoing head straight from the incoming request); everything else (balanced
// instances, Expect, large or unknown-length bodies, https, h2c, fast_path=false) takes the relayed path
// (relayed.go: the outgoing request prepared as httputil.ReverseProxy prepares it, sent on the app's
// RoundTripper). Both answer through internal/relay, with ReverseProxy's header rewriting, flushing,
// trailers, 1xx, abort and error handling; TestDirectPathMatchesReverseProxy holds each of them to
// ReverseProxy writing its own answers, on hostile requests and answers. Only a protocol switch
// (WebSocket) goes through ReverseProxy itself, whose tunnel runs it.
//
// Connection reuse and unsolicited answers (SECURITY.md, "Unsolicited responses"): no answer an app wrote
// before a request was sent may be read as that request's answer on a reused HTTP/1.1 connection. The h1
// client looks at every idle connection before it reuses it and closes one a response left bytes behind
// on. net/http's Transport does neither reliably (its read loop puts a connection back in the pool before
// it looks at the bytes buffered behind the answer), so each instance's Transport is used in one of two
// ways, chosen by what it carries:
//   - behind the h1 client (fast_path=true, http:// and unix://) it carries only h1's fallback: bodies
//     above 16 KiB or of unknown length, Expect: 100-continue, request trailers, upgrades. These are rare
//     and mostly large, so it keeps no idle connection (DisableKeepAlives; nginx's default towards
//     upstreams too): a connect per such request, no reuse to poison.
//   - for https:// apps and with fast_path=false it carries everything, so it keeps its pool and is
//     guarded (internal/transportguard): a request that takes a pooled connection waits until the
//     Transport's read loop is blocked on an empty buffer and the socket holds nothing, so stale bytes
//     are found and the connection dropped before the request is counted or written (GETs are retried on
//     a new connection by the Transport, a request with a body gets 502). The wait costs a lock and one
//     non-blocking peek per request (BenchmarkTransportGuard); it needs no second HTTP parser, and TLS
//     1.3 session tickets read while idle do not count as unsolicited. Extending h1 to TLS would serve
//     https apps faster still; it is not done.
//
// Measured (-cpu 1, loopback, a shared 2-core machine, so times are +-30%): the small GET on the h1 path
// is untouched (47 allocs, 8.8 KB per request before and after, BenchmarkTransportPaths); the guard adds
// 10 allocations and 0.7 KB per request (the request's trace hook) and no time above the noise (~35 us per
// GET with and without, over http and https, BenchmarkTransportGuard); a 64 KiB POST behind h1 pays a new
// connection: ~90-120 us became ~300-600 us per request, 117 -> 199 allocs, 47 -> 118 KB (the new
// connection's two 32 KiB buffers), small next to such an upload's transfer from a real client.
//
// h2c and HTTP/2 connections are multiplexed by stream id and are not affected; an upgraded connection is
// never reused.
package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/httpproxy/internal/h1"
	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/internal/relay"
	"github.com/switchyard/switchyard/internal/transportguard"
	"github.com/switchyard/switchyard/reqinfo"
)

// DefaultTimeout is the time an app has to send its response header when neither the app's timeout option
// nor the gateway default sets one.
const DefaultTimeout = 60 * time.Second

// DefaultReadTimeout is the stall limit on a response body when neither the app's read_timeout option nor
// the gateway's upstream read timeout sets one.
const DefaultReadTimeout = 60 * time.Second

// DefaultMaxResponseHeaderBytes limits an app's response head when the gateway sets no limit.
const DefaultMaxResponseHeaderBytes = 256 << 10

// Kind returns the registry entry for http://, https:// and unix:// apps.
//
// Options: timeout (time to the response header, then 504; default the gateway's upstream timeout),
// dial_timeout (default 5s), websocket (allow WebSocket upgrades, default true), host_header
// ("client", the default, or "upstream"), max_idle_conns (idle keep-alive connections kept, default 256),
// idle_timeout (an idle app connection is closed after it, default 90s; set it below the app's own
// keep-alive timeout so the app never closes a connection a request is just being sent on),
// tls_server_name and tls_insecure_skip_verify (https only), h2c (speak HTTP/2 without TLS, by prior
// knowledge, to an http:// or unix:// app such as a gRPC server; default false; WebSocket upgrades then
// cannot pass), fast_path (default true: plain HTTP/1.1 requests to http:// and unix:// apps go through
// the synchronous client of package h1, the rest through net/http's Transport; false sends everything
// through the Transport), read_timeout (stall limit on the response body: when the app sends no byte for
// that long - plus up to min(limit/8, 250ms) - the response is aborted, the client sees a cut stream, the
// app's connection is closed and one line is logged; default the gateway's upstream read timeout, else
// 60s; 0 turns it off; WebSocket tunnels after 101 are not subject to it). The response head may not
// exceed the gateway's response header limit (Target.MaxResponseHeaderBytes, default 256 KiB): 502.
func Kind() adapters.Kind {
	return adapters.Kind{
		Schemes:       []string{"http", "https", "unix"},
		Factory:       New,
		Summary:       "HTTP/1.1 over TCP or a unix socket",
		MultiInstance: true,
	}
}

// Proxy is one HTTP application. It owns its connection pools (one per instance) and, with several
// instances or health checks, an upstream.Set; Close stops the checks and releases idle connections.
type Proxy struct {
	name, upstream string
	websocket      bool
	rp             *httputil.ReverseProxy
	insts          []*instance
	set            *upstream.Set // nil for one instance without health checks or breaker
	// The direct path (direct.go): fast is the h1 client of the only instance (nil without the fast
	// path or with a balancer); target is the outgoing URL base; clientHost keeps the client's Host.
	fast       *h1.Transport
	target     *url.URL
	clientHost bool
	noDirect   bool // tests: nothing on the direct path
	// directBal is the balancer of an app of several instances that the direct path and the lane's loop
	// serve (balanced.go); nil: none.
	directBal *balancer
	relay     relay.Options // every answer but a tunnel's: names and logger, an HTTP head
	// The relayed path (relayed.go): rt sends the prepared request (the instance's client or the
	// balancer), rewrite is ReverseProxy's Rewrite, failed its ErrorHandler.
	rt      http.RoundTripper
	rewrite func(*httputil.ProxyRequest)
	failed  func(http.ResponseWriter, *http.Request, error)
	// viaReverseProxy (tests) lets ReverseProxy serve and write what the relayed path serves: the
	// reference the relayed path is held to.
	viaReverseProxy bool
}

// New builds the Proxy for t.
func New(t adapters.Target) (http.Handler, error) {
	o := t.Options
	timeout := t.DefaultTimeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	timeout, err := o.Duration("timeout", timeout)
	if err != nil {
		return nil, err
	}
	dialTimeout, err := o.Duration("dial_timeout", 5*time.Second)
	if err != nil {
		return nil, err
	}
	websocket, err := o.Bool("websocket", true)
	if err != nil {
		return nil, err
	}
	hostHeader := o.String("host_header", "client")
	if hostHeader != "client" && hostHeader != "upstream" {
		return nil, fmt.Errorf("option host_header=%q: expected client or upstream", hostHeader)
	}
	maxIdle, err := o.Int("max_idle_conns", 256, 0, 1<<16)
	if err != nil {
		return nil, err
	}
	// Below the app's own keep-alive timeout (gunicorn: 2 s) the gateway closes an idle connection before
	// the app does, so a request that cannot be retried (a POST) never meets a connection closing under it.
	idleTimeout, err := o.Duration("idle_timeout", 90*time.Second)
	if err != nil {
		return nil, err
	}
	if idleTimeout <= 0 {
		return nil, fmt.Errorf("option idle_timeout=%v: expected a positive duration such as 90s (max_idle_conns=0 keeps no idle connection)", idleTimeout)
	}
	h2c, err := o.Bool("h2c", false)
	if err != nil {
		return nil, err
	}
	fastPath, err := o.Bool("fast_path", true)
	if err != nil {
		return nil, err
	}
	readDef := DefaultReadTimeout
	switch {
	case t.ReadTimeout > 0:
		readDef = t.ReadTimeout
	case t.ReadTimeout < 0:
		readDef = 0
	}
	readTimeout, err := o.Duration("read_timeout", readDef)
	if err != nil {
		return nil, err
	}
	if readTimeout < 0 {
		return nil, fmt.Errorf("option read_timeout=%v: expected a duration >= 0 (0: no limit)", readTimeout)
	}
	maxHead := int64(DefaultMaxResponseHeaderBytes)
	if t.MaxResponseHeaderBytes > 0 {
		maxHead = t.MaxResponseHeaderBytes
	}
	if h2c && t.URL.Scheme == "https" {
		return nil, fmt.Errorf("option h2c=true: h2c is HTTP/2 without TLS; https apps negotiate HTTP/2 themselves")
	}

	lb, err := upstream.ParseConfig(o)
	if err != nil {
		return nil, err
	}

	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	base := &http.Transport{
		Proxy:                  nil, // never take HTTP_PROXY from the gateway's environment
		DialContext:            dialer.DialContext,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    maxIdle,
		IdleConnTimeout:        idleTimeout,
		ResponseHeaderTimeout:  timeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // the client's Accept-Encoding is the app's business
		MaxResponseHeaderBytes: maxHead,
		ReadBufferSize:         32 << 10,
		WriteBufferSize:        32 << 10,
		// max_idle_conns=0 keeps none (the Transport would read a zero MaxIdleConnsPerHost as 2).
		DisableKeepAlives: maxIdle == 0,
	}
	if h2c {
		base.Protocols = new(http.Protocols)
		base.Protocols.SetUnencryptedHTTP2(true) // only: every request goes out as HTTP/2 with prior knowledge
	}

	urls := t.Instances
	if len(urls) == 0 {
		urls = []*url.URL{t.URL}
	}
	var tlsConf *tls.Config
	for _, u := range urls {
		if u.Scheme == "https" && tlsConf == nil {
			skip, err := o.Bool("tls_insecure_skip_verify", false)
			if err != nil {
				return nil, err
			}
			tlsConf = &tls.Config{ServerName: o.String("tls_server_name", ""), InsecureSkipVerify: skip, MinVersion: tls.VersionTLS12}
		}
	}
	insts := make([]*instance, len(urls))
	for i, u := range urls {
		in, err := newInstance(u, base, dialer, tlsConf, fastPath && !h2c, readTimeout)
		if err != nil {
			if len(urls) > 1 {
				return nil, fmt.Errorf("instance %q: %v", u.String(), err)
			}
			return nil, err
		}
		if i > 0 && in.path != insts[0].path {
			return nil, fmt.Errorf("instance %q has path %q but %q has %q: all instances must share the path prefix", u.String(), in.path, urls[0].String(), insts[0].path)
		}
		if in.fast != nil {
			in.fast.OnUnsolicited = unsolicitedLog(t.Logger, t.Name, in.upstream)
		}
		if in.safe != nil {
			in.safe.OnUnsolicited = unsolicitedLog(t.Logger, t.Name, in.upstream)
		}
		insts[i] = in
	}
	target := &url.URL{Scheme: insts[0].scheme, Host: insts[0].host, Path: insts[0].path}

	p := &Proxy{name: t.Name, upstream: insts[0].upstream, websocket: websocket, insts: insts, target: target, clientHost: hostHeader == "client"}
	logger := t.Logger
	var rt = insts[0].rt
	if len(insts) > 1 || lb.Active() || lb.Breaker {
		addrs := make([]string, len(insts))
		for i, in := range insts {
			addrs[i] = in.addr
		}
		probe := func(ctx context.Context, ui *upstream.Instance) error {
			if lb.HealthConnect {
				return insts[ui.Index()].reach(ctx)
			}
			return insts[ui.Index()].probe(ctx, lb.HealthPath, lb.HealthHost, lb.HealthStatus)
		}
		if p.set, err = upstream.New(t.Name, addrs, lb, probe, logger); err != nil {
			return nil, err
		}
		b := &balancer{set: p.set, insts: insts, retries: lb.Retries, logger: logger, app: t.Name}
		rt = b
		if len(insts) > 1 && p.clientHost && !p.set.PicksByRequest() && allFast(insts) {
			p.directBal = b
		}
	}
	if len(insts) == 1 {
		p.fast = insts[0].fast // (with health checks or a breaker too: attempt.go)
	}
	p.rewrite = func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		if hostHeader == "client" {
			pr.Out.Host = pr.In.Host
		}
		setForwarded(pr)
		// The server fills the client's trailer values into In.Trailer once the body is read; Out's
		// is a copy made before, so without sharing the map the app would get the names, empty.
		if pr.In.Trailer != nil {
			pr.Out.Trailer = pr.In.Trailer
		}
	}
	p.rt, p.failed = rt, p.fail(logger)
	p.rp = &httputil.ReverseProxy{
		Rewrite:      p.rewrite,
		Transport:    rt,
		BufferPool:   bufferPool{},
		ErrorHandler: p.failed,
		ErrorLog:     proxyLog(logger, t.Name, p.logUpstream()),
	}
	p.relay = relay.Options{App: t.Name, Upstream: p.logUpstream(), Logger: logger}
	return p, nil
}

// instance is one upstream of a Proxy: its own connection pool and where requests to it go.
type instance struct {
	addr     string // as configured, for health reports
	upstream string // "10.0.0.1:8000" or "unix:/run/app.sock", for logs
	scheme   string // of the outbound request URL
	host     string // of the outbound request URL
	path     string // base path prefix, without a trailing slash
	tr       *http.Transport
	safe     *transportguard.Transport // tr guarded against unsolicited responses; nil for h2c
	fast     *h1.Transport             // nil without the fast path
	rt       http.RoundTripper         // fast, or tr
	// network and dialAddr are what a connection to the instance dials (connect-only checks, Reach).
	network, dialAddr string
	dialer            *net.Dialer
}

// newInstance checks u and builds its transport from base (and the fast HTTP/1.1 client in front of it
// for http:// and unix:// when fast).
func newInstance(u *url.URL, base *http.Transport, dialer *net.Dialer, tlsConf *tls.Config, fast bool, readTimeout time.Duration) (*instance, error) {
	in := &instance{addr: u.String(), upstream: u.Host, scheme: u.Scheme, host: u.Host, path: strings.TrimSuffix(u.Path, "/"), tr: base.Clone()}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("no host: expected %s://host:port", u.Scheme)
		}
		if u.User != nil {
			return nil, fmt.Errorf("credentials in the URL are not supported: use a header option or the app's own auth")
		}
		if u.Scheme == "https" {
			in.tr.TLSClientConfig = tlsConf.Clone()
		}
	case "unix":
		if u.Host != "" || u.Path == "" {
			return nil, fmt.Errorf("expected unix:///absolute/path.sock")
		}
		sock := u.Path
		in.upstream = "unix:" + sock
		in.tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", sock)
		}
		in.scheme, in.host, in.path = "http", "localhost", ""
	default:
		return nil, fmt.Errorf("unsupported scheme %q", u.Scheme)
	}
	in.dialer, in.network, in.dialAddr = dialer, "tcp", u.Host
	switch {
	case u.Scheme == "unix":
		in.network, in.dialAddr = "unix", u.Path
	case u.Port() == "" && u.Scheme == "https":
		in.dialAddr = net.JoinHostPort(u.Hostname(), "443")
	case u.Port() == "":
		in.dialAddr = net.JoinHostPort(u.Hostname(), "80")
	}
	// net/http's Transport on HTTP/1.1 reuses a connection only once it settled (transportguard: no
	// unsolicited bytes can be read as a request's answer); behind the h1 client, which sends it only rare
	// requests (large or unknown-length bodies, Expect, trailers, upgrades), it reuses none. h2c streams
	// carry ids and need neither.
	var rt http.RoundTripper = in.tr
	if base.Protocols == nil || base.Protocols.HTTP1() {
		in.tr.DisableKeepAlives = in.tr.DisableKeepAlives || fast && in.scheme == "http"
		in.safe = transportguard.Wrap(in.tr)
		rt = in.safe
	}
	in.rt = guard(rt, readTimeout)
	if fast && in.scheme == "http" {
		network, addr := "tcp", u.Host
		if u.Scheme == "unix" {
			network, addr = "unix", u.Path
		}
		in.fast = &h1.Transport{
			Dial:                   func(ctx context.Context) (net.Conn, error) { return dialer.DialContext(ctx, network, addr) },
			Fallback:               in.rt,
			ResponseHeaderTimeout:  base.ResponseHeaderTimeout,
			MaxResponseHeaderBytes: int(base.MaxResponseHeaderBytes),
			MaxIdleConns:           base.MaxIdleConnsPerHost,
			IdleConnTimeout:        base.IdleConnTimeout,
			ReadTimeout:            readTimeout,
			Network:                network, Address: addr, DialTimeout: dialer.Timeout, DialKeepAlive: dialer.KeepAlive,
		}
		if in.fast.MaxIdleConns == 0 {
			in.fast.MaxIdleConns = -1
		}
		in.rt = in.fast
	}
	return in, nil
}

// probe is one active health check: GET path (as is, not under the instance's base path) with host as
// Host, or the instance's own host when host is empty; healthy when the status is in want. The body is
// drained (bounded) so the connection can be reused.
func (in *instance) probe(ctx context.Context, path, host string, want upstream.StatusSet) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.scheme+"://"+in.host+path, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("User-Agent", "switchyard-health-check")
	resp, err := in.rt.RoundTrip(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !want.Match(resp.StatusCode) {
		return fmt.Errorf("health check %s answered %d", path, resp.StatusCode)
	}
	return nil
}

// reach opens a connection to the instance and closes it.
func (in *instance) reach(ctx context.Context) error {
	c, err := in.dialer.DialContext(ctx, in.network, in.dialAddr)
	if err != nil {
		return err
	}
	return c.Close()
}

// Reach opens a connection to the instance whose Health Address is addr and closes it (adapters.Reacher).
func (p *Proxy) Reach(ctx context.Context, addr string) error {
	for _, in := range p.insts {
		if in.addr == addr {
			return in.reach(ctx)
		}
	}
	return fmt.Errorf("no instance %q", addr)
}

// fail is the ReverseProxy error handler: 503 when no instance could be tried, else the usual mapping
// (502, 504, 413, nothing for a client that left), one log line naming the instance and the cause.
func (p *Proxy) fail(logger *slog.Logger) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		up := p.upstream
		var ie *instanceError
		if errors.As(err, &ie) {
			up = ie.upstream
		}
		if errors.Is(err, failure.ErrNoInstance) {
			up = "(all instances)"
		}
		failure.Answer(w, r, logger, p.name, up, err)
	}
}

// setForwarded sets X-Forwarded-For/-Host/-Proto. ReverseProxy has already removed the client's values from
// the outbound request; the inbound ones only survive the router when the peer is a trusted proxy, so
// they are extended here rather than believed blindly.
func setForwarded(pr *httputil.ProxyRequest) {
	in := pr.In
	peer, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		peer = ""
	}
	xff := strings.Join(in.Header["X-Forwarded-For"], ", ")
	switch {
	case xff != "" && peer != "":
		xff += ", " + peer
	case peer != "":
		xff = peer
	}
	host := in.Header.Get("X-Forwarded-Host")
	if host == "" {
		host = in.Host
	}
	proto := in.Header.Get("X-Forwarded-Proto")
	switch {
	case proto != "":
	case in.TLS != nil:
		proto = "https"
	default:
		proto = "http"
	}
	// One backing array for the three fields (three Header.Set calls would allocate three).
	all := []string{xff, host, proto}
	h := pr.Out.Header
	if xff != "" {
		h["X-Forwarded-For"] = all[0:1:1]
	}
	if host != "" {
		h["X-Forwarded-Host"] = all[1:2:2]
	}
	h["X-Forwarded-Proto"] = all[2:3:3]
}

// ServeHTTP proxies r to the application.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !p.websocket && r.Header.Get("Upgrade") != "" {
		r = r.Clone(r.Context())
		r.Header.Del("Upgrade")
	}
	if p.set == nil {
		reqinfo.From(r.Context()).SetUpstream(p.upstream)
	}
	defer flushOnAbort(w, r)
	if p.directClient() != nil && p.directEligible(r) {
		p.serveDirect(w, r)
		return
	}
	if p.viaReverseProxy || upgrading(r.Header) {
		p.rp.ServeHTTP(w, r) // its tunnel runs a protocol switch
		return
	}
	p.serveRelayed(w, r)
}

// upgrading reports whether a request with header h asks to switch protocols, as ReverseProxy reads it:
// an Upgrade field and a Connection field naming it.
func upgrading(h http.Header) bool {
	_, up := h["Upgrade"]
	return up && hasToken(h["Connection"], "upgrade")
}

// ServesDirect reports whether ServeHTTP would serve r on the direct path (the h1 client of its one
// instance or of the one its balancer picks, no ReverseProxy), as the router's front door leaves r: the
// seam through which the gateway's fast lane (internal/fastlane) takes only requests whose answer it
// relays exactly as net/http's server would.
func (p *Proxy) ServesDirect(r *http.Request) bool {
	if _, up := r.Header["Upgrade"]; up {
		return false
	}
	return p.directClient() != nil && p.directEligible(r)
}

// flushOnAbort, deferred, lets a response aborted mid-body (ReverseProxy panics with http.ErrAbortHandler
// when the body copy fails) reach the client as what it is: the head and the bytes received so far are
// flushed before the abort closes the connection, so the client sees a started answer whose body is cut
// (short of its Content-Length, or a chunked stream without its last chunk), never a clean end. Without
// it a head still in the server's buffer would be dropped and the client would only see a closed
// connection. A close-delimited body (an HTTP/1.0 client, no Content-Length) would look complete once
// cut, so it is not flushed.
func flushOnAbort(w http.ResponseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		relay.FlushForAbort(w, r)
	}
	panic(v)
}

// Health reports each instance's state (adapters.HealthReporter). A single instance without health
// checks or breaker is reported healthy and not Known.
func (p *Proxy) Health() []adapters.InstanceHealth {
	var hs []adapters.InstanceHealth
	if p.set != nil {
		hs = p.set.Health()
	} else {
		hs = []adapters.InstanceHealth{{Address: p.insts[0].addr, Healthy: true}}
	}
	for i := range hs {
		if i >= len(p.insts) {
			continue
		}
		if in := p.insts[i]; in.fast != nil {
			hs[i].Unsolicited = in.fast.Unsolicited()
		}
		if in := p.insts[i]; in.safe != nil {
			hs[i].Unsolicited += in.safe.Unsolicited()
		}
	}
	return hs
}

// unsolicitedLog is the log line of a pooled connection dropped because the app sent bytes no request
// asked for (see h1.Transport.OnUnsolicited).
func unsolicitedLog(logger *slog.Logger, app, upstream string) func() {
	if logger == nil {
		logger = slog.Default()
	}
	return func() {
		logger.LogAttrs(context.Background(), slog.LevelWarn,
			"app sent an unsolicited response on an idle connection: connection dropped, nothing delivered",
			slog.String("app", app), slog.String("upstream", upstream))
	}
}

// logUpstream names the upstream in ReverseProxy's own log lines: the instance, or all of them.
func (p *Proxy) logUpstream() string {
	if len(p.insts) == 1 {
		return p.upstream
	}
	names := make([]string, len(p.insts))
	for i, in := range p.insts {
		names[i] = in.upstream
	}
	return "one of " + strings.Join(names, ", ")
}

// Upstream is the address of the first instance ("127.0.0.1:8000" or "unix:/run/app.sock").
func (p *Proxy) Upstream() string { return p.upstream }

// Close closes idle pooled connections. Requests in flight finish on their own connections.
func (p *Proxy) Close() error {
	if p.set != nil {
		_ = p.set.Close()
	}
	for _, in := range p.insts {
		if in.fast != nil {
			_ = in.fast.Close()
		}
		in.tr.CloseIdleConnections()
	}
	return nil
}

// bufferPool recycles the 32 KiB copy buffers ReverseProxy uses for response bodies.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
