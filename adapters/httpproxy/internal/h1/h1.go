// Package h1 owns the gateway's fast HTTP/1.1 client: an http.RoundTripper for one upstream address
// (a TCP host:port or a unix socket) that sends a request and reads the response head on the caller's
// goroutine, over a LIFO pool of keep-alive connections.
//
// Why: net/http.Transport hands every request to two goroutines of its connection (a write loop and a read
// loop) through channels and selects; on a small proxied GET that hand-off, not the network, is most of
// the client-side cost. This transport does the same work synchronously: one write of the whole request
// (head and a small body from one pooled buffer), one read that usually brings the whole response head,
// parsed with few allocations (all strings of a head share one allocation).
//
// Contract of the fast path (Transport.RoundTrip):
//   - It serves http:// requests without a body, or with a known Content-Length of at most MaxBodyBytes
//     (read fully from the client before anything is written, so a failed client read leaves the
//     connection clean). Everything else goes to Fallback unchanged: requests with Upgrade or Connection
//     fields (WebSocket), Expect (100-continue), bodies of unknown or larger length, request trailers,
//     CONNECT, Host values outside plain ASCII host[:port].
//   - Deadlines: ResponseHeaderTimeout runs from the end of the write to the end of the response head
//     (then a timeout error that net.Error reports as Timeout, answered 504). The request's context is
//     watched with context.AfterFunc: cancellation or its deadline interrupts the write, the head read
//     and later body reads, and RoundTrip returns the context's error. ReadTimeout is a stall limit on
//     the body: a read deadline set after the head and renewed by reads at most every StallSlack (a timer
//     update, no syscall); when it passes, the read fails with *StallError and the connection is closed.
//   - 1xx responses other than 101 are passed to the request's httptrace Got1xxResponse hook (which
//     httputil.ReverseProxy uses to forward them), then the final response is read. A 101 is an error
//     (upgrades never take this path).
//   - The response body is exactly the message body: Content-Length, chunked (trailers filled into
//     Response.Trailer at EOF, as net/http does) or read until the app closes. HEAD, 204, 304 have none.
//     The connection goes back to the pool only when the body was read to its clean end (immediately
//     for responses without a body) and neither side asked for Connection: close; Close before that
//     closes the connection. Read and Close must not be called concurrently.
//   - Every idle connection is looked at before it carries a request (connpeek.Idle, one non-blocking
//     peek): one the app closed is dropped, and one holding bytes that arrived while no request was
//     outstanding is dropped, counted (Unsolicited) and reported to OnUnsolicited, never read as the next
//     request's answer (response-queue poisoning: an app that answers twice, or reads a request body as
//     a second request, would otherwise hand its stale answer to another client). A response that leaves
//     bytes behind it in the read buffer is treated the same way when it ends.
//   - A reused connection that fails before the app sent any response byte (write error, EOF or reset on
//     the first read, or a 408 the app sent while it was idle) is retried once on a new connection when
//     the request is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE or an Idempotency-Key) - its
//     body, if any, is still in the buffer.
//   - Content-Length: written when the body is not empty, and as "Content-Length: 0" for an empty body of
//     POST, PUT and PATCH (methods that define content: origins such as lighttpd answer 411 without it)
//     and of any request that arrived with an explicit Content-Length field.
//   - Responses are parsed by the rules of net/http's ReadResponse (Transfer-Encoding only chunked,
//     conflicting Content-Length refused, MaxResponseHeaderBytes), with the differences parseHead names;
//     failures are *ProtocolError (502).
//
// Idle connections: at most MaxIdleConns, closed after IdleConnTimeout unused (checked when the pool is
// used and by one timer), all closed by CloseIdleConnections.
//
// Measured (2 shared cores, bench/run's small GET; medians of 3 alternated runs): gateway/nginx at 64
// connections 0.57 with fast_path=false, 0.63 with this client; at 1 connection the median latency
// 143 us -> 126 us (nginx 105 us). BenchmarkProxy: 105 -> 69 allocs/op. The rest of the gap is the
// net/http server, httputil.ReverseProxy (request and header clones, header copies: ~14% of the
// gateway's CPU) and the kernel's loopback work (~40% of the CPU is in syscalls, about 5 a request).
// RoundTripOutgoing lets package httpproxy skip ReverseProxy for these requests (its direct path): on the
// same small GET at 64 connections, gateway CPU per request 39 -> 33 us and throughput +12% (medians of 4
// alternated 5 s runs on a loaded 2-core machine, before/after binaries side by side).
package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/appconn"
	"github.com/switchyard/switchyard/internal/connpeek"
)

// Transport is the fast HTTP/1.1 client of one upstream. Its fields must be set before first use.
type Transport struct {
	// Dial opens a new connection to the upstream. Required.
	Dial func(ctx context.Context) (net.Conn, error)
	// Fallback serves the requests the fast path does not take (see the package doc). Required.
	Fallback http.RoundTripper
	// ResponseHeaderTimeout bounds the wait for the response head after the request was written;
	// zero means no limit other than the request's context.
	ResponseHeaderTimeout time.Duration
	// MaxResponseHeaderBytes limits a response head (and a trailer section); zero means 256 KiB. Heads of
	// 1xx responses given to a Got1xxResponse hook are counted separately, else together with the final one.
	MaxResponseHeaderBytes int
	// MaxIdleConns is the number of idle connections kept; zero means 64, negative none.
	MaxIdleConns int
	// IdleConnTimeout closes idle connections unused for that long; zero means 90 s.
	IdleConnTimeout time.Duration
	// MaxBodyBytes is the largest request body (by Content-Length) the fast path sends; zero means 16 KiB.
	// Larger bodies go to Fallback, which writes them concurrently with reading the response.
	MaxBodyBytes int64
	// ReadBufferSize is the size of each connection's read buffer; zero means 4 KiB (a page, as nginx's
	// proxy_buffer_size): a longer head is read on past it, and a body read into a larger buffer
	// bypasses it, so it costs memory per connection and nothing else.
	ReadBufferSize int
	// ReadTimeout is the stall limit while a response body is read: when the app sends no byte for that
	// long (plus up to StallSlack(ReadTimeout), as the read deadline is renewed at most that often), the
	// body read fails with a *StallError and the connection is closed, never pooled. Zero means no limit.
	ReadTimeout time.Duration
	// Network and Address say what Dial connects to ("tcp" and host:port, or "unix" and a socket path),
	// with DialTimeout and DialKeepAlive (TCP keep-alive idle time and interval) as Dial uses them: a
	// caller that connects without Dial (the fast lane's event loop, which connects without a goroutine)
	// reads them. Empty: unknown (Dial only).
	Network, Address           string
	DialTimeout, DialKeepAlive time.Duration
	// OnUnsolicited, when set, is called (on the request's goroutine) each time a pooled connection is
	// dropped because it held bytes no request asked for: the caller logs the event.
	OnUnsolicited func()

	unsolicited atomic.Uint64

	hookMu      sync.Mutex
	onCloseIdle []func() // OnCloseIdle's hooks

	poolOnce sync.Once
	idle     appconn.Pool[*pconn] // LIFO: the most recently used connection is the most likely alive and warm
}

// pconn is one upstream connection.
type pconn struct {
	c      net.Conn
	br     *bufio.Reader
	reused bool
	// interrupt is the context watch of every request on the connection: it makes blocked I/O fail
	// at once (made once per connection, not per request).
	interrupt func()
	peek      *connpeek.Peeker // the liveness check before each reuse
	// deadline says a read deadline may be set: the next exchange sets its own or clears it (a pooled
	// connection is not read, and the liveness peek ignores deadlines, so none is cleared before pooling).
	deadline bool
}

// respBody is a response and its body in one allocation.
type respBody struct {
	resp http.Response
	body body
}

func (t *Transport) maxHead() int {
	if t.MaxResponseHeaderBytes > 0 {
		return t.MaxResponseHeaderBytes
	}
	return 256 << 10
}

func (t *Transport) maxIdle() int {
	if t.MaxIdleConns == 0 {
		return 64
	}
	return t.MaxIdleConns
}

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleConnTimeout > 0 {
		return t.IdleConnTimeout
	}
	return 90 * time.Second
}

func (t *Transport) maxBody() int64 {
	if t.MaxBodyBytes > 0 {
		return t.MaxBodyBytes
	}
	return 16 << 10
}

// StallSlack is how stale a body's stall deadline may grow before a read renews it (appconn.Slack).
func StallSlack(limit time.Duration) time.Duration { return appconn.Slack(limit) }

// StallError is the failure of a response body read after the app sent nothing for Limit (Transport.
// ReadTimeout): appconn's, one type for every kind.
type StallError = appconn.StallError

// timeoutError is the response head timeout (a net.Error with Timeout true).
type timeoutError struct{}

func (timeoutError) Error() string   { return "h1: timeout awaiting response headers" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// bufs holds request head buffers and response head scratch space.
var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 64<<10 {
		return // an outsized head: let it go
	}
	*b = (*b)[:0]
	bufs.Put(b)
}

// testHookBeforeWrite runs between a connection's idle check and the write of a request (tests only).
var testHookBeforeWrite func()

// eligible reports whether the fast path serves req.
func (t *Transport) eligible(req *http.Request) bool {
	if req.URL.Scheme != "http" || req.Method == http.MethodConnect || len(req.Trailer) > 0 {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	if _, ok := req.Header["Connection"]; ok {
		return false
	}
	if _, ok := req.Header["Expect"]; ok {
		return false
	}
	if req.ContentLength < 0 || req.ContentLength > t.maxBody() {
		return false
	}
	if req.ContentLength == 0 && req.Body != nil && req.Body != http.NoBody {
		return false // a body of unknown length
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		if !hostByte(host[i]) {
			return false
		}
	}
	return true
}

// idempotent reports whether req may be sent twice (RFC 9110 9.2.2, or an Idempotency-Key).
func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, ok := req.Header["Idempotency-Key"]
	return ok
}

// RoundTrip sends req and returns the response head with a streaming body, as the package doc describes.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.eligible(req) {
		return t.Fallback.RoundTrip(req)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	return t.roundTrip(req, nil, host, idempotent(req))
}

// Outgoing is a request head its caller writes itself: a proxy that writes the outgoing head straight
// from the incoming request instead of cloning it into an *http.Request first.
type Outgoing interface {
	// AppendHead appends the request line and the header fields, without Content-Length (appended by
	// RoundTripOutgoing when SendsLength says so) and without the empty line that ends the head.
	// AppendRequestTarget and AppendField write and check the parts.
	AppendHead(b []byte) ([]byte, error)
	// Got1xx receives each informational response other than 101 (what a Got1xxResponse trace hook would).
	Got1xx(code int, h textproto.MIMEHeader) error
}

// RoundTripOutgoing is RoundTrip for a head written by o: req gives the context, the method, the body and
// its ContentLength (at most MaxBody, known), never its URL or header; replay says whether the request
// may be sent twice. The caller decides that the fast path fits (Eligible's rules); nothing falls back.
// The response's Request is req.
func (t *Transport) RoundTripOutgoing(req *http.Request, o Outgoing, replay bool) (*http.Response, error) {
	return t.roundTrip(req, o, "", replay)
}

// SendsLength reports whether req's head carries a Content-Length field: when its body is not empty, and
// for an empty body when the method defines content (POST, PUT, PATCH: RFC 9110 8.6 asks for the length
// then, and origins such as lighttpd answer 411 without it) or the request arrived with an explicit
// Content-Length (kept in its header by net/http's server).
func SendsLength(req *http.Request) bool {
	if req.ContentLength != 0 {
		return req.ContentLength > 0
	}
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		return true
	}
	_, ok := req.Header["Content-Length"]
	return ok
}

// MaxBody is the largest request body (by Content-Length) the fast path sends.
func (t *Transport) MaxBody() int64 { return t.maxBody() }

// ValidHost reports whether host may be written as a Host field by the fast path (plain ASCII host[:port]).
func ValidHost(host string) bool {
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		if !hostByte(host[i]) {
			return false
		}
	}
	return true
}

// AppendRequestTarget appends the origin-form request-target of path (escaped as url.URL.EscapedPath
// would, for a URL without RawPath) and rawQuery, as RoundTrip writes it.
func AppendRequestTarget(b []byte, path, rawQuery string) []byte {
	u := url.URL{Path: path, RawQuery: rawQuery}
	return appendRequestURI(b, &u)
}

// AppendField appends the header field lines "k: v" of vv as RoundTrip writes them (values trimmed of
// surrounding blanks); a name or value that cannot be written safely (header injection towards the app)
// is the error RoundTrip returns for it.
func AppendField(b []byte, k string, vv []string) ([]byte, error) {
	if k == "" {
		return b, &errInvalidHeader{k}
	}
	for i := 0; i < len(k); i++ {
		if !tokenByte(k[i]) {
			return b, &errInvalidHeader{k}
		}
	}
	for _, v := range vv {
		if !validValue(v) {
			return b, &errInvalidHeader{k}
		}
		b = append(b, k...)
		b = append(b, ": "...)
		b = append(b, strings.Trim(v, " \t")...)
		b = append(b, "\r\n"...)
	}
	return b, nil
}

func (t *Transport) roundTrip(req *http.Request, o Outgoing, host string, replay bool) (*http.Response, error) {
	ctx := req.Context()
	// Connect before reading the body: after a dial error a balancer may hand the untouched body to
	// another instance.
	pc, err := t.conn(ctx, false)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	bp := getBuf()
	defer putBuf(bp)
	var b []byte
	if o == nil {
		b, err = appendRequestHead((*bp)[:0], req, host)
	} else if b, err = o.AppendHead((*bp)[:0]); err == nil {
		if SendsLength(req) {
			b = append(b, "Content-Length: "...)
			b = strconv.AppendInt(b, req.ContentLength, 10)
			b = append(b, "\r\n"...)
		}
		b = append(b, "\r\n"...)
	}
	if err == nil && req.ContentLength > 0 {
		b, err = appendBody(b, req.Body, req.ContentLength)
	}
	if req.Body != nil {
		req.Body.Close()
	}
	*bp = b
	if err != nil {
		t.putIdle(pc) // nothing was written: the connection is as clean as it was
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if pc, err = t.conn(ctx, true); err != nil {
				return nil, err
			}
		}
		resp, err := t.exchange(ctx, req, o, pc, b)
		if err == nil {
			return resp, nil
		}
		var nb *noBytesError
		if attempt == 0 && pc.reused && replay && ctx.Err() == nil && (errors.As(err, &nb) || errors.Is(err, errStale408)) {
			continue
		}
		return nil, err
	}
}

var errStale408 = errors.New("h1: 408 on a reused connection")

// appendBody appends exactly n bytes of body to b.
func appendBody(b []byte, body io.Reader, n int64) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, n)...)
	got := 0
	for got < int(n) {
		m, err := body.Read(b[start+got:])
		got += m
		if err != nil {
			if got == int(n) {
				break
			}
			if err == io.EOF {
				return b[:start], errors.New("h1: request body shorter than its Content-Length")
			}
			return b[:start], err
		}
	}
	return b, nil
}

// conn returns an idle connection that is still quiet (unless fresh) or dials one.
func (t *Transport) conn(ctx context.Context, fresh bool) (*pconn, error) {
	if !fresh {
		for {
			pc := t.getIdle()
			if pc == nil {
				break
			}
			switch pc.peek.Idle() {
			case connpeek.Quiet:
				return pc, nil
			case connpeek.Unsolicited:
				t.dropUnsolicited(pc)
			default:
				pc.c.Close()
			}
		}
	}
	c, err := t.Dial(ctx)
	if err != nil {
		return nil, err
	}
	size := t.ReadBufferSize
	if size <= 0 {
		size = 4 << 10
	}
	pc := &pconn{c: c, br: bufio.NewReaderSize(c, size), peek: connpeek.NewPeeker(c)}
	pc.interrupt = func() { appconn.Expire(c) }
	return pc, nil
}

// exchange writes the request bytes b on pc and reads the response head. On error pc is closed.
func (t *Transport) exchange(ctx context.Context, req *http.Request, o Outgoing, pc *pconn, b []byte) (*http.Response, error) {
	stop := context.AfterFunc(ctx, pc.interrupt)
	if err := t.write(ctx, pc, stop, b); err != nil {
		return nil, err
	}
	return t.answer(ctx, req, o, pc, stop, nil)
}

// failed ends an exchange on pc that failed with err: the context's error when it ended, else err.
func failed(ctx context.Context, pc *pconn, stop func() bool, err error) error {
	stop()
	pc.c.Close()
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// write sends b on pc and starts the wait for the answer's head (ResponseHeaderTimeout).
func (t *Transport) write(ctx context.Context, pc *pconn, stop func() bool, b []byte) error {
	if err := t.writeOnly(ctx, pc, stop, b); err != nil {
		return err
	}
	if t.ResponseHeaderTimeout > 0 {
		appconn.SetReadDeadline(ctx, pc.c, time.Now().Add(t.ResponseHeaderTimeout))
		pc.deadline = true
	} else if pc.deadline {
		pc.c.SetReadDeadline(time.Time{})
		pc.deadline = false
	}
	return nil
}

// readHead reads one head (a status line and fields) from pc into buf, mapping a timeout to
// timeoutError; after1xx says an informational answer came first. On error pc is closed.
func (t *Transport) readHead(ctx context.Context, pc *pconn, stop func() bool, buf []byte, limit int, after1xx bool) ([]byte, error) {
	raw, err := readLines(pc.br, buf, limit)
	if err != nil {
		if after1xx {
			err = unwrapNoBytes(err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			err = timeoutError{}
		}
		return raw, failed(ctx, pc, stop, err)
	}
	return raw, nil
}

// answer reads the response head (first, when not nil, is a head already read) and returns the response.
// On error pc is closed.
func (t *Transport) answer(ctx context.Context, req *http.Request, o Outgoing, pc *pconn, stop func() bool, first []byte) (*http.Response, error) {
	fail := func(err error) (*http.Response, error) {
		return nil, failed(ctx, pc, stop, err)
	}
	var got1xx func(int, textproto.MIMEHeader) error
	if o != nil {
		got1xx = o.Got1xx
	} else if trace := httptrace.ContextClientTrace(ctx); trace != nil {
		got1xx = trace.Got1xxResponse
	}
	limit := t.maxHead()
	sp := getBuf()
	defer putBuf(sp)
	var h head
	for n1xx := 0; ; n1xx++ {
		raw := first
		first = nil
		if raw == nil {
			var err error
			if raw, err = t.readHead(ctx, pc, stop, (*sp)[:0], limit, n1xx > 0); err != nil {
				*sp = raw[:0]
				return nil, err
			}
			*sp = raw[:0]
		}
		if err := parseHead(raw, &h); err != nil {
			return fail(err)
		}
		if h.code >= 200 || h.code == http.StatusSwitchingProtocols {
			break
		}
		if n1xx >= 64 {
			return fail(protoErr("too many 1xx informational responses"))
		}
		if got1xx != nil {
			if err := got1xx(h.code, textproto.MIMEHeader(h.header)); err != nil {
				return fail(err)
			}
		} else {
			limit -= len(raw)
		}
	}
	if h.code == http.StatusSwitchingProtocols {
		return fail(errUnexpected101)
	}
	if h.code == http.StatusRequestTimeout && pc.reused {
		return fail(errStale408)
	}
	stall := appconn.Stall{Limit: t.ReadTimeout}
	switch {
	case t.ReadTimeout > 0:
		stall.Start(ctx, pc.c)
		pc.deadline = true
	case pc.deadline:
		appconn.SetReadDeadline(ctx, pc.c, time.Time{})
		pc.deadline = false
	}
	rb := &respBody{}
	resp := &rb.resp
	*resp = http.Response{
		Status:        h.status,
		StatusCode:    h.code,
		Proto:         protoString(h.minor),
		ProtoMajor:    h.major,
		ProtoMinor:    h.minor,
		Header:        h.header,
		ContentLength: h.length,
		// A request that asks to close its connection (req.Close) sends Connection: close, unless an
		// Outgoing wrote its head: that head is the app's request as a proxy sends it, whose client's
		// Connection: close is its own hop's (ReverseProxy clears Close likewise), and the connection is
		// kept when the answer allows it.
		Close:   h.close || req.Close && o == nil,
		Trailer: h.trailer,
		Request: req,
	}
	noBody := req.Method == http.MethodHead || h.code == http.StatusNoContent || h.code == http.StatusNotModified
	if noBody {
		if req.Method != http.MethodHead {
			resp.ContentLength = 0 // a HEAD answer keeps the declared length of the GET answer, as in net/http
		}
		resp.Body = http.NoBody
		resp.Trailer = nil
		t.release(pc, stop, !resp.Close)
		return resp, nil
	}
	bd := &rb.body
	*bd = body{t: t, pc: pc, stop: stop, resp: resp, keep: !resp.Close, stall: stall}
	switch {
	case h.chunked:
		resp.TransferEncoding = []string{"chunked"}
		resp.ContentLength = -1
		bd.mode = modeChunked
		bd.cr = newChunkedReader(pc.br)
	case h.length >= 0:
		bd.mode = modeLength
		bd.n = h.length
		if h.length == 0 {
			resp.Body = http.NoBody
			t.release(pc, stop, bd.keep)
			return resp, nil
		}
	default:
		bd.mode = modeEOF
		resp.Close = true
		bd.keep = false
	}
	resp.Body = bd
	return resp, nil
}

func unwrapNoBytes(err error) error {
	var nb *noBytesError
	if errors.As(err, &nb) {
		if nb.err == io.EOF {
			return errors.New("h1: unexpected EOF after an informational response")
		}
		return nb.err
	}
	return err
}

func protoString(minor int) string {
	if minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// release ends a response's use of pc: back to the pool when keep and the context watch was stopped
// before it fired, else closed.
func (t *Transport) release(pc *pconn, stop func() bool, keep bool) {
	if !stop() || !keep {
		pc.c.Close()
		return
	}
	if pc.br.Buffered() > 0 {
		t.dropUnsolicited(pc) // bytes after the end of the answer: not the start of any later one
		return
	}
	t.putIdle(pc)
}

// dropUnsolicited closes a connection that holds bytes no request asked for, counts and reports it.
func (t *Transport) dropUnsolicited(pc *pconn) {
	pc.c.Close()
	t.unsolicited.Add(1)
	if t.OnUnsolicited != nil {
		t.OnUnsolicited()
	}
}

// Unsolicited is the number of connections dropped because the app sent bytes no request asked for.
func (t *Transport) Unsolicited() uint64 { return t.unsolicited.Load() }

// pool is the idle pool, configured from the Transport's fields on first use.
func (t *Transport) pool() *appconn.Pool[*pconn] {
	t.poolOnce.Do(func() {
		t.idle = appconn.Pool[*pconn]{Max: max(t.maxIdle(), 0), IdleTimeout: t.idleTimeout(),
			CloseConn: func(pc *pconn) { pc.c.Close() }}
	})
	return &t.idle
}

func (t *Transport) getIdle() *pconn {
	pc, ok := t.pool().Get()
	if !ok {
		return nil
	}
	pc.reused = true
	return pc
}

func (t *Transport) putIdle(pc *pconn) { t.pool().Put(pc) }

// IdleConns is the number of idle pooled connections.
func (t *Transport) IdleConns() int { return t.pool().Len() }

// CloseIdleConnections closes the idle connections (and those of Fallback when it has the method).
// Connections in use are closed when their response ends.
func (t *Transport) CloseIdleConnections() {
	t.pool().CloseIdle()
	t.closeIdleHooks()
	if ci, ok := t.Fallback.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Close closes the idle connections and stops pooling: connections in use are closed when their response
// ends instead of going back to the pool.
func (t *Transport) Close() error {
	t.pool().Close()
	t.CloseIdleConnections()
	return nil
}
