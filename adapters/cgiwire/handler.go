package cgiwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgienv"
	ups "github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/internal/appconn"
	"github.com/switchyard/switchyard/internal/clientbody"
	"github.com/switchyard/switchyard/internal/relay"
	"github.com/switchyard/switchyard/internal/spool"
	"github.com/switchyard/switchyard/reqinfo"
)

// ErrVarsTooLarge is wrapped by a Protocol's EncodeRequest when the variables cannot be framed (uwsgi's
// 16-bit size); the client gets 431 Request Header Fields Too Large. It is failure.ErrVarsTooLarge.
var ErrVarsTooLarge = failure.ErrVarsTooLarge

// ErrMalformedResponse is wrapped by a Protocol's ReadResponse when the app's response head is not valid.
var ErrMalformedResponse = errors.New("malformed response")

// Protocol is what one wire protocol contributes to a Handler.
type Protocol struct {
	// Name names the protocol in log lines ("uwsgi").
	Name string
	// RequestVars, when set, returns protocol variables for r; they go after the derived CGI variables and
	// before the configured params, so configuration still overrides them.
	RequestVars func(r *http.Request) []cgienv.Param
	// EncodeRequest returns the bytes written before the request body. An error wrapping ErrVarsTooLarge
	// answers 431, any other error 400.
	EncodeRequest func(vars []cgienv.Param) ([]byte, error)
	// ReadResponse reads one response head from br. The returned Response's Body reads the rest of the body
	// from br and must fail (not return io.EOF) when the app's declared length is cut short. A 1xx
	// response other than 101 is skipped by the caller, which then calls ReadResponse again. maxHead is the
	// configured limit on the head's size: the Handler enforces it on br's source in any case (br then
	// fails once the head cannot fit), a reader that counts lines itself may apply it too.
	ReadResponse func(br *bufio.Reader, req *http.Request, maxHead int64) (*http.Response, error)
}

// Handler serves requests by sending them to one app over a fresh connection each.
//
// It is a transport (RoundTrip) behind the one response relay (internal/relay), which writes the answer:
// hop-by-hop fields and those the app's Connection field names dropped, informational answers and
// trailers passed on as over HTTP, a flush whenever the next read would wait for the app.
//
// Request bodies: a body of known length is streamed as it arrives; a body of unknown length (chunked) is
// read first by the relay (held in memory up to SpoolMemory, then in an unlinked temp file) so
// CONTENT_LENGTH can be sent, because these protocols frame the body by that variable alone.
//
// Limits on the app: Config.Timeout bounds its silence before the response head is complete (renewed
// whenever a piece of the request body is written to it, so a slow upload is not held against it);
// Config.MaxHeaderBytes bounds each response head; Config.ReadTimeout bounds each stall while the body
// streams (no byte for that long), so an app hanging half-way through its body cannot hold the client and
// the connection forever, while a slow but steady stream (heartbeats) lives.
//
// Failures before the response head: refused or reset connection, malformed or oversized head -> 502,
// timeout -> 504, oversize variables -> 431, a broken client body -> 400 (413 for the gateway's body
// limit), client gone -> no answer. After the head was sent, a failure (the app resetting, closing short of
// its declared length, or stalling past ReadTimeout) aborts the response (http.ErrAbortHandler) so a
// truncated body never looks complete, and the connection is closed. Each failure logs one line naming the
// app, the upstream and the cause.
type Handler struct {
	cfg    Config
	proto  Protocol
	logger *slog.Logger
	// relay holds the names, the logger, the spooling (SpoolMemory in memory unless a test lowers it) and
	// the CGI head the response relay uses.
	relay relay.Options
}

// New returns a Handler for cfg speaking p. logger receives failure lines (slog.Default() when nil). A
// cfg.MaxHeaderBytes of 0 means DefaultMaxHeaderBytes.
func New(cfg Config, p Protocol, logger *slog.Logger) *Handler {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return &Handler{cfg: cfg, proto: p, logger: logger, relay: relay.Options{
		Name: p.Name, App: cfg.App, Upstream: cfg.Upstream(), Logger: logger, Spool: &spool.Options{Memory: SpoolMemory},
		CGIHead: true,
	}}
}

// Close releases nothing: connections live for one request. It exists so owners can treat every adapter
// alike.
func (h *Handler) Close() error { return nil }

// NewApp returns the handler of one app: New(cfg, p, logger), behind its active health checks
// (upstream.Guarded: 503 while the app fails them) when cfg.Health.Active(). A request check goes through
// a second Handler whose log only feeds the check's error; a failing check is logged when the verdict
// changes, not at every interval.
func NewApp(cfg Config, p Protocol, logger *slog.Logger) (http.Handler, error) {
	h := New(cfg, p, logger)
	if !cfg.Health.Active() {
		return h, nil
	}
	probe := ups.ConnectProbe(cfg.Network, cfg.Address)
	if !cfg.Health.HealthConnect {
		pl := &ups.ProbeLog{}
		probe = ups.RequestProbe(New(cfg, p, pl.Logger()), pl, cfg.Mount, cfg.Health.HealthPath, cfg.healthHost(), cfg.Health.HealthStatus)
	}
	return ups.NewGuarded(cfg.App, cfg.Upstream(), h, cfg.Health, probe, logger)
}

// Health reports the one instance as healthy but not known (adapters.HealthReporter): without active
// checks nothing judges it, and /readyz asks Reach instead.
func (h *Handler) Health() []adapters.InstanceHealth {
	return []adapters.InstanceHealth{{Address: h.cfg.Upstream(), Healthy: true}}
}

// Reach opens a connection to the app and closes it (adapters.Reacher).
func (h *Handler) Reach(ctx context.Context, _ string) error {
	c, err := h.cfg.dialer().DialContext(ctx, h.cfg.Network, h.cfg.Address)
	if err != nil {
		return err
	}
	return c.Close()
}

// ServeHTTP implements http.Handler: the request goes through the transport (RoundTrip) and its answer
// through the one response relay (internal/relay), which spools a body of unknown length first, as these
// protocols frame a body by CONTENT_LENGTH alone.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	relay.Serve(w, r, h, &h.relay)
}

// RoundTrip sends r to the app over a fresh connection and returns its answer (relay.Transport): the head
// the Protocol read (informational heads other than 101 forwarded to w on the way, as over HTTP), the Body
// reading the rest. Closing the Body closes the connection and ends the request body (the body goroutine
// stopped, clientbody.End under full duplex). r's body is of known length (Serve spooled it otherwise). It
// answers failures before the head itself and returns nil.
func (h *Handler) RoundTrip(w http.ResponseWriter, r *http.Request) *http.Response {
	ctx := r.Context()
	start := time.Now()
	reqinfo.From(ctx).SetUpstream(h.cfg.Upstream()) // the access log's upstream, as for HTTP apps

	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		body = r.Body
	}

	script := cgienv.SplitMount(r.URL.Path, h.cfg.Mount)
	var extra []cgienv.Param
	if h.proto.RequestVars != nil {
		extra = append(extra, h.proto.RequestVars(r)...)
	}
	extra = append(extra, h.cfg.Params...)
	head, err := h.proto.EncodeRequest(cgienv.Build(r, script, extra))
	if err != nil {
		h.fail(w, r, "encoding the request", err)
		return nil
	}

	dctx := ctx
	var deadline time.Time
	if h.cfg.Timeout > 0 {
		deadline = start.Add(h.cfg.Timeout)
		var cancel context.CancelFunc
		dctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	conn, err := h.cfg.dialer().DialContext(dctx, h.cfg.Network, h.cfg.Address)
	if err != nil {
		h.fail(w, r, "connecting", err)
		return nil
	}
	// A cancelled request unblocks every read and write on the connection at once.
	x := &exchange{w: w, r: r, conn: conn}
	x.stopExpire = context.AfterFunc(ctx, func() { appconn.Expire(conn) })
	handedOver := false // the answer's Body owns the exchange: its Close ends it
	defer func() {
		if !handedOver {
			x.end()
		}
	}()
	up := &appWire{conn: conn, ctx: ctx, timeout: h.cfg.Timeout, stall: h.cfg.ReadTimeout, st: appconn.Stall{Limit: h.cfg.ReadTimeout}}
	up.begin(deadline)

	if _, err := conn.Write(head); err != nil {
		conn.Close()
		h.fail(w, r, "sending the request", err)
		return nil
	}

	if body != nil {
		// clientStream: the body is read from the client's connection as the copy goes (not spooled,
		// not a copy held in memory).
		x.clientStream = !relay.Spooled(r) && r.GetBody == nil
		if !relay.Spooled(r) {
			// The body is still coming from the client while the answer may already go out: without full
			// duplex, net/http's HTTP/1 server blocks writing the response head until our pending body
			// read returns. HTTP/2 is always full duplex and reports ErrNotSupported. Under full duplex the
			// handler must end the client's body itself before it returns (clientbody.End, in end).
			x.duplex = http.NewResponseController(w).EnableFullDuplex() == nil
		}
		// The body goes in its own goroutine so an app that answers before reading all of it cannot
		// deadlock against us.
		x.done = make(chan struct{})
		x.tr = &trackedReader{r: body}
		go func() {
			defer close(x.done)
			if testHookBodyCopy != nil {
				testHookBodyCopy()
			}
			bp := copyBufs.Get().(*[]byte)
			_, _ = io.CopyBuffer(appWireWriter{up}, x.tr, *bp)
			copyBufs.Put(bp)
			if x.tr.err == nil {
				return // finished, or the app stopped reading: its answer tells what happened
			}
			x.bodyMu.Lock()
			x.bodyErr = failure.ClientBody(x.tr.err)
			x.bodyMu.Unlock()
			if up.headRead() {
				// The app already answered; tell it no more input comes.
				if cw, ok := conn.(interface{ CloseWrite() error }); ok {
					_ = cw.CloseWrite()
				}
				return
			}
			conn.Close() // a truncated body must not reach the app as if it were whole
		}()
	}

	br := bufio.NewReaderSize(up, 16<<10)
	maxHead := h.cfg.MaxHeaderBytes
	var resp *http.Response
	for i := 0; ; i++ {
		// Each head may take maxHead bytes; the raw reads stop one buffer past that, so an endless head
		// is never held, and what the parser consumed is checked exactly once it is done.
		base := up.n - int64(br.Buffered())
		up.limit = base + maxHead + int64(br.Size())
		resp, err = h.proto.ReadResponse(br, r, maxHead)
		if up.overLimit || err == nil && up.n-int64(br.Buffered())-base > maxHead {
			err = fmt.Errorf("%w: response head larger than %d bytes", ErrMalformedResponse, maxHead)
		}
		if err == nil && (resp.StatusCode < 100 || resp.StatusCode > 999) {
			err = fmt.Errorf("%w: status %d", ErrMalformedResponse, resp.StatusCode)
		}
		if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
			err = fmt.Errorf("%w: 101 Switching Protocols is not supported", ErrMalformedResponse)
		}
		if err == nil && resp.StatusCode < 200 && i < 8 {
			relay.Forward1xx(w, resp.StatusCode, resp.Header) // 100 Continue, 103 Early Hints
			continue
		}
		if err == nil && resp.StatusCode < 200 {
			err = fmt.Errorf("%w: too many informational responses", ErrMalformedResponse)
		}
		break
	}
	if err != nil {
		if be := x.clientBodyErr(); be != nil {
			err = be
		} else if !errors.Is(err, ErrMalformedResponse) && up.headDeadlinePassed() && !errors.Is(err, os.ErrDeadlineExceeded) {
			// The protocol's reader may have flattened the timeout into its own error.
			err = fmt.Errorf("%w (%v)", os.ErrDeadlineExceeded, err)
		}
		if x.clientStream && x.duplex && !x.tr.ended() {
			// The app failed with the client's body not through: the connection closes after the
			// answer (the rest is not worth waiting for), and the answer says so.
			clientbody.CloseAfterReply(w)
		}
		h.fail(w, r, "reading the response head", err)
		return nil
	}
	up.limit = 0
	up.bodyPhase()
	handedOver = true
	resp.Body = &answerBody{x: x, up: up, rc: resp.Body}
	return resp
}

// exchange is one request's connection and request-body copy, ended once (end) by the answer's Body or,
// on a failure before the head, by RoundTrip.
type exchange struct {
	w          http.ResponseWriter
	r          *http.Request
	conn       net.Conn
	stopExpire func() bool

	// The request body's copy (done nil: no body).
	done   chan struct{}
	tr     *trackedReader
	bodyMu sync.Mutex
	// bodyErr is the client body's failure, marked failure.ClientBody.
	bodyErr error
	// clientStream: the body is read from the client's connection as the copy goes.
	clientStream bool
	// duplex: net/http lets the answer go out while the client's body is still read (HTTP/1).
	duplex bool
}

func (x *exchange) clientBodyErr() error {
	x.bodyMu.Lock()
	defer x.bodyMu.Unlock()
	return x.bodyErr
}

// end closes the connection and ends the request body's copy.
func (x *exchange) end() {
	x.conn.Close()
	defer x.stopExpire()
	if x.done == nil {
		return
	}
	// The body goroutine may be blocked reading a slow client: wake it up with an expired read deadline
	// on the client connection. Only when the body is the client's own stream and a read of it is
	// pending: a goroutine blocked writing to the app was woken by conn.Close, and a deadline set when no
	// body read waits on the connection (a body already read to its end, or a copy held in memory, which
	// carries GetBody, as a cascade hands it over) would fail net/http's background read instead, which
	// cancels the context of the client connection and so of every later request on it.
	rc := http.NewResponseController(x.w)
	woke := false
	if pending := x.tr.stop(); pending && x.clientStream {
		woke = rc.SetReadDeadline(time.Unix(1, 0)) == nil
	}
	if testHookBodyStopped != nil {
		testHookBodyStopped()
	}
	<-x.done
	switch {
	case x.clientStream && x.duplex:
		// No read of the client's body may outlive the handler, net/http's own included: under full
		// duplex it would read an unread rest after the handler returned and then panic at the next
		// request on the connection. End reads what is buffered or has the connection closed after the
		// answer, and lifts the deadline.
		clientbody.End(x.w, x.r.Body, x.r.ContentLength-x.tr.n, woke, x.tr.err)
	case woke:
		_ = rc.SetReadDeadline(time.Time{})
	}
}

// answerBody is the rest of the answer after its head, read through the Protocol's body reader. It
// implements relay.WaitNotifier: a read of the connection is where the relay flushes. Close ends the
// exchange (the connection is never reused); it does not close the Protocol's body, which would read an
// unread rest to its end.
type answerBody struct {
	x      *exchange
	up     *appWire
	rc     io.ReadCloser
	closed bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF && b.up.stalled {
		err = fmt.Errorf("%w: %w", &appconn.StallError{Limit: b.up.st.Limit}, err)
	}
	return n, err
}

// NotifyBeforeWait calls f before each read of the app's connection (relay.WaitNotifier).
func (b *answerBody) NotifyBeforeWait(f func()) { b.up.beforeRead = f }

func (b *answerBody) Close() error {
	if !b.closed {
		b.closed = true
		b.x.end()
	}
	return nil
}

// ReadHTTPResponse reads an HTTP/1.x response head from br with http.ReadResponse, refusing status codes
// outside 100-999 (which ReadResponse lets through and http.ResponseWriter would panic on). It applies no
// size limit of its own: under a Handler, the Handler's limit on br's source bounds the head.
func ReadHTTPResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("reading the HTTP response head: %w", err)
	}
	if resp.StatusCode < 100 || resp.StatusCode > 999 {
		return nil, fmt.Errorf("%w: status %d", ErrMalformedResponse, resp.StatusCode)
	}
	return resp, nil
}

// BadVars wraps a protocol's reason for refusing the variables (failure.ErrBadVars): the client gets 400.
func BadVars(reason string) error { return fmt.Errorf("%w: %s", failure.ErrBadVars, reason) }

// fail answers a failure before the response head (failure.Answer), naming the stage that failed.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, stage string, err error) {
	failure.Answer(w, r, h.logger, h.cfg.App, h.cfg.Upstream(), fmt.Errorf("%s %s: %w", h.proto.Name, stage, err))
}

// appWire is one request's app connection as both directions see it: the response reader reads through
// it (counting bytes for the head limit and keeping the body's stall deadline) and the body writer writes
// through appWireWriter (renewing the head deadline as the upload progresses). Deadlines set here never
// undo a cancellation: each is followed by a check of the request's context, whose AfterFunc expires them.
type appWire struct {
	conn    net.Conn
	ctx     context.Context
	timeout time.Duration // silence allowed before the head is complete (0: none)
	stall   time.Duration // silence allowed while the body streams (0: none)

	mu           sync.Mutex
	headDone     bool
	headDeadline time.Time // when the head is due (zero: no limit)

	// Used only by the goroutine reading the response.
	n         int64         // bytes read from conn
	limit     int64         // while a head is read (> 0): reads stop at this count of bytes
	overLimit bool          // a head hit limit
	st        appconn.Stall // the stall deadline (Limit: read_timeout), kept by reads once the head is read
	stalled   bool          // the body read failed on the stall deadline
	// beforeRead, set while the body streams, is called before each read of conn (the relay's flush).
	beforeRead func()
}

// begin sets the deadline for sending the request head and reading the response head.
func (u *appWire) begin(deadline time.Time) {
	u.mu.Lock()
	u.headDeadline = deadline
	_ = u.conn.SetDeadline(deadline)
	u.mu.Unlock()
	u.keepCancelled()
}

// keepCancelled re-expires the connection's deadlines if the request was cancelled: a deadline set just
// after the cancellation's AfterFunc ran would otherwise undo it.
func (u *appWire) keepCancelled() { appconn.Keep(u.ctx, u.conn) }

// headRead reports whether the response head was read.
func (u *appWire) headRead() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.headDone
}

// headDeadlinePassed reports whether the response head is overdue.
func (u *appWire) headDeadlinePassed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.headDeadline.IsZero() && !time.Now().Before(u.headDeadline)
}

// bodyPhase ends the head's deadline: from now on Read keeps the stall deadline.
func (u *appWire) bodyPhase() {
	u.mu.Lock()
	u.headDone = true
	_ = u.conn.SetReadDeadline(time.Time{})
	u.mu.Unlock()
	u.keepCancelled()
}

func (u *appWire) Read(p []byte) (int, error) {
	if u.limit > 0 {
		if u.n >= u.limit {
			u.overLimit = true
			return 0, fmt.Errorf("%w: response head too large", ErrMalformedResponse)
		}
		if rest := u.limit - u.n; int64(len(p)) > rest {
			p = p[:rest]
		}
	} else {
		if u.beforeRead != nil {
			u.beforeRead()
		}
		u.st.Renew(u.ctx, u.conn)
	}
	n, err := u.conn.Read(p)
	u.n += int64(n)
	if u.limit == 0 && u.st.Stalled(u.ctx, err) {
		u.stalled = true
	}
	return n, err
}

// appWireWriter writes the request body to the app. Each write may take as long as the app's current
// limit (timeout before the head, read_timeout after it; none when 0) and renews the head deadline: the
// app's time to answer counts from the last piece of body it was sent.
type appWireWriter struct{ u *appWire }

func (w appWireWriter) Write(p []byte) (int, error) {
	u := w.u
	u.mu.Lock()
	limit := u.stall
	if !u.headDone {
		limit = u.timeout
	}
	u.mu.Unlock()
	if limit > 0 {
		_ = u.conn.SetWriteDeadline(time.Now().Add(limit))
	} else {
		_ = u.conn.SetWriteDeadline(time.Time{})
	}
	u.keepCancelled()
	n, err := u.conn.Write(p)
	if err == nil && u.timeout > 0 {
		u.mu.Lock()
		if !u.headDone {
			u.headDeadline = time.Now().Add(u.timeout)
			_ = u.conn.SetReadDeadline(u.headDeadline)
		}
		u.mu.Unlock()
		u.keepCancelled()
	}
	return n, err
}

// trackedReader reads the request body for the body goroutine, keeping the first error that is not EOF,
// the count of bytes read (err and n are looked at once the goroutine is done) and whether a read is
// pending, so the handler knows when waking the goroutine needs a read deadline.
type trackedReader struct {
	r   io.Reader
	err error
	n   int64 // bytes read

	mu       sync.Mutex
	reading  bool // a Read of r is in progress
	eof      bool // a Read of r returned io.EOF
	stopping bool // the handler is ending: start no further read
}

func (t *trackedReader) Read(p []byte) (int, error) {
	t.mu.Lock()
	if t.stopping {
		t.mu.Unlock()
		return 0, errStopped
	}
	t.reading = true
	t.mu.Unlock()
	n, err := t.r.Read(p)
	t.mu.Lock()
	t.reading = false
	t.eof = t.eof || err == io.EOF
	t.mu.Unlock()
	t.n += int64(n)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

// ended reports whether a read of r returned io.EOF.
func (t *trackedReader) ended() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.eof
}

// stop forbids further reads and reports whether one is pending now. The caller, holding no lock, may
// then wake that read; as no other read can start, the wake-up reaches only it.
func (t *trackedReader) stop() (pending bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopping = true
	return t.reading
}

// Test hooks (nil outside tests): testHookBodyCopy runs in the body goroutine before its first read,
// testHookBodyStopped in the handler once the body copy was told to stop. Together they let a test hold
// the copy back until the handler ends, as a busy scheduler may.
var testHookBodyCopy, testHookBodyStopped func()

// copyBufs recycles the 32 KiB buffers of the request body copies: one per request with a body otherwise.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// errStopped ends the body copy of a request whose handler has returned.
var errStopped = errors.New("request ended before its body was sent")
