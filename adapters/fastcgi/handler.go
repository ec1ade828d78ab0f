package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgienv"
	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/internal/appconn"
	"github.com/switchyard/switchyard/internal/clientbody"
	"github.com/switchyard/switchyard/internal/exact"
	"github.com/switchyard/switchyard/internal/relay"
	"github.com/switchyard/switchyard/internal/spool"
	"github.com/switchyard/switchyard/reqinfo"
)

// spoolMemory is how much of a body of unknown length is held in memory before spooling to a temp file.
const spoolMemory = 1 << 20

// Handler runs requests through one FastCGI application. It is safe for concurrent use; Close releases its
// idle connections, and requests still running close theirs when they end.
type Handler struct {
	app      string // the APP string, for logs
	upstream string // "unix:/path" or "tcp:host:port", for logs
	mount    string
	scripts  *scripts // nil: plain responder mode
	timeout  time.Duration
	stall    time.Duration // read_timeout: the stall limit on the response body (0: none)
	maxHead  int64         // the response head limit
	keepConn bool
	params   []cgienv.Param
	health   upstream.Config // active health checks (withHealth)
	pool     *pool
	logger   *slog.Logger
	relay    relay.Options // set with the fields above (relayOptions)
	bufs     sync.Pool     // *[]byte of maxContent bytes
}

// Close closes the idle connections; later requests fail with 502.
func (h *Handler) Close() error { return h.pool.close() }

// Health reports the app as one instance (adapters.HealthReporter), healthy and not judged, with the
// count of connections dropped for unsolicited records.
func (h *Handler) Health() []adapters.InstanceHealth {
	return []adapters.InstanceHealth{{Address: h.upstream, Healthy: true, Unsolicited: h.pool.unsolicited.Load()}}
}

func (h *Handler) buf() *[]byte {
	if b, ok := h.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, maxContent)
	return &b
}

// ServeHTTP implements http.Handler: the request goes through the FastCGI transport (RoundTrip) and its
// answer through the one response relay (internal/relay), which spools a body of unknown length first:
// PHP-FPM waits for CONTENT_LENGTH bytes and hangs on a body without it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	relay.Serve(w, r, h, &h.relay)
}

// relayOptions are the Handler's relay options: its names and logger, spooling (up to spoolMemory of a
// body of unknown length in memory, then a temp file), and a CGI head (the length is the relay's to set).
func (h *Handler) relayOptions() relay.Options {
	return relay.Options{App: h.app, Upstream: h.upstream, Logger: h.logger, Spool: &spool.Options{Memory: spoolMemory}, CGIHead: true}
}

// RoundTrip sends r to the app and returns its answer (relay.Transport): the head parsed from the CGI
// response, the Body reading STDOUT up to END_REQUEST. Closing the Body ends the exchange: the connection
// goes back to the pool when END_REQUEST arrived, the app took the whole request and keep_conn holds, and
// is closed otherwise. r's body is of known length (Serve spooled it otherwise). It answers failures
// before the head itself and returns nil, as it does for a static file served below root.
func (h *Handler) RoundTrip(w http.ResponseWriter, r *http.Request) *http.Response {
	script, served, err := h.script(w, r)
	if served {
		return nil // a static file below root: no app was asked
	}
	reqinfo.From(r.Context()).SetUpstream(h.upstream) // the access log's upstream, as for HTTP apps
	if err != nil {
		if errors.Is(err, errNoScript) {
			h.logger.LogAttrs(r.Context(), slog.LevelDebug, "no script for request",
				slog.String("app", h.app), slog.String("path", r.URL.Path))
			http.NotFound(w, r)
			return nil
		}
		h.logger.LogAttrs(r.Context(), slog.LevelError, "cannot resolve script",
			slog.String("app", h.app), slog.String("upstream", h.upstream), slog.String("path", r.URL.Path),
			slog.String("cause", err.Error()))
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return nil
	}

	// The body: absent, or of known length (the app, told CONTENT_LENGTH, would wait for missing bytes).
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength > 0 {
		body = exact.Reader(r.Body, r.ContentLength)
	}

	params := cgienv.Build(r, script, h.params)
	records, err := encodeParams(params)
	if err != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelWarn, "request parameters too large",
			slog.String("app", h.app), slog.String("cause", err.Error()))
		http.Error(w, http.StatusText(http.StatusRequestHeaderFieldsTooLarge), http.StatusRequestHeaderFieldsTooLarge)
		return nil
	}

	for attempt := 0; ; attempt++ {
		res, retry := h.exchange(w, r, records, body, !relay.Spooled(r), attempt == 0)
		if !retry {
			return res
		}
	}
}

// script splits the request path into the CGI script variables. When the path names a static file below
// the document root (see scripts.resolve), it serves that file instead and returns served = true.
func (h *Handler) script(w http.ResponseWriter, r *http.Request) (_ cgienv.Script, served bool, _ error) {
	s := cgienv.SplitMount(r.URL.Path, h.mount)
	if h.scripts == nil {
		return s, false, nil
	}
	if s.Name != h.mount && h.mount != "" {
		// Not under the mount: the router should never send such a request here.
		return cgienv.Script{}, false, errNoScript
	}
	root, err := h.scripts.open()
	if err != nil {
		return cgienv.Script{}, false, err
	}
	if root != nil {
		defer root.Close()
	}
	res, err := h.scripts.resolveIn(root, s.PathInfo)
	if err != nil {
		return cgienv.Script{}, false, err
	}
	if res.Static != "" {
		h.scripts.files.ServeFile(w, r, root, res.Static)
		return cgienv.Script{}, true, nil
	}
	filename := h.scripts.root + res.Script
	if h.scripts.root == "/" {
		filename = res.Script
	}
	return cgienv.Script{
		Name:         h.mount + res.Script,
		PathInfo:     res.PathInfo,
		Filename:     filename,
		DocumentRoot: h.scripts.root,
	}, false, nil
}

// encodeParams encodes the parameters into PARAMS record contents. Records break only between pairs,
// because PHP-FPM decodes each PARAMS record on its own; a single pair over 65535 bytes is an error.
func encodeParams(params []cgienv.Param) ([][]byte, error) {
	var out [][]byte
	cur := make([]byte, 0, 4096)
	for _, p := range params {
		n := pairLen(p.Name, p.Value)
		if n > maxContent {
			return nil, fmt.Errorf("parameter %s of %d bytes does not fit a FastCGI record", p.Name, n)
		}
		if len(cur)+n > maxContent {
			out = append(out, cur)
			cur = make([]byte, 0, 4096)
		}
		cur = appendPair(cur, p.Name, p.Value)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// fail answers before the response header was sent (failure.Answer).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	failure.Answer(w, r, h.logger, h.app, h.upstream, err)
}

// exchange runs one request on one connection and returns the app's answer, or nil when it answered a
// failure itself. It returns retry = true only when a reused connection turned out to be dead before
// anything was consumed or answered, so the request may be sent again on a fresh one. clientStream
// reports that body reads r.Body, the client's own stream (not a spooled copy).
func (h *Handler) exchange(w http.ResponseWriter, r *http.Request, records [][]byte, body io.Reader, clientStream, mayRetry bool) (_ *http.Response, retry bool) {
	ctx := r.Context()
	dialCtx, cancel := context.WithTimeout(ctx, h.timeout)
	c, reused, err := h.pool.get(dialCtx)
	cancel()
	if err != nil {
		h.fail(w, r, fmt.Errorf("connecting: %w", err))
		return nil, false
	}
	x := &roundTrip{h: h, ctx: ctx, c: c, id: c.requestID(), rc: http.NewResponseController(w)}
	// The client going away unblocks every read and write on the app connection.
	x.stop = context.AfterFunc(ctx, func() { appconn.Expire(c.nc) })
	handedOver := false // the answer's Body owns the connection: its Close ends the exchange
	defer func() {
		if !handedOver {
			x.stop()
			c.sr.unwatch()
			c.nc.Close()
		}
	}()

	x.extendHeaderDeadline()
	if body == nil {
		// Nothing to stream: send the whole request at once, no goroutine.
		x.writerFinished = true
		if err := x.writeRequest(records, nil); err != nil {
			if mayRetry && reused && retryable(err) {
				return nil, true
			}
			h.fail(w, r, err)
			return nil, false
		}
	} else {
		x.w, x.r, x.clientStream = w, r, clientStream
		x.writeDone = make(chan error, 1)
		go func() { x.writeDone <- x.writeRequest(records, body) }()
	}

	out := &stdout{rr: recordReader{br: c.br}, id: x.id, errlog: stderrLog{h: h, ctx: ctx}}
	br := bufio.NewReaderSize(out, 4096)
	head, err := cgienv.ReadResponseHeader(br, h.maxHead)
	if err == nil && head.Status < 200 {
		err = fmt.Errorf("%w: informational status %d as the final status", cgienv.ErrMalformedResponse, head.Status)
	}
	if err != nil {
		defer out.errlog.flush()
		if out.err != nil {
			err = out.err
		}
		c.nc.Close()
		werr, finished := x.stopWriter()
		if werr != nil {
			// The writer's failure is the cause when it broke the client body or closed the
			// connection under the reader.
			if errors.Is(werr, failure.ErrBadRequestBody) || errors.Is(err, net.ErrClosed) {
				err = werr
			}
		}
		if finished && mayRetry && reused && !x.bodyStarted && out.records == 0 && retryable(err) && ctx.Err() == nil {
			return nil, true // the body untouched: the retry sends it whole
		}
		if !finished {
			// The writer waits on the client's body, mid-upload: the answer goes first, saying the
			// connection closes, as waking the writer will make it (see waitWriter).
			clientbody.CloseAfterReply(w)
		}
		h.fail(w, r, err)
		x.waitWriter()
		return nil, false
	}
	x.headerDone(ctx)
	if ctx.Err() != nil {
		defer out.errlog.flush()
		c.nc.Close()
		x.waitWriter()
		h.fail(w, r, ctx.Err())
		return nil, false
	}

	x.answer = answerBody{x: x, out: out, br: br}
	res := &x.res // both in x, allocated once per exchange
	*res = http.Response{StatusCode: head.Status, Header: head.Header, ContentLength: -1, Body: &x.answer}
	if cl := head.Header["Content-Length"]; len(cl) == 1 {
		if n, err := strconv.ParseInt(cl[0], 10, 64); err == nil && n >= 0 {
			res.ContentLength = n
		}
	}
	handedOver = true
	return res, false
}

// answerBody reads the rest of STDOUT after the head, up to END_REQUEST (io.EOF). It implements
// relay.WaitNotifier: the relay flushes before a read of the connection. Close ends the exchange.
type answerBody struct {
	x      *roundTrip
	out    *stdout
	br     *bufio.Reader // over out, holding what the head's parse read ahead
	eof    bool
	closed bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	n, err := b.br.Read(p)
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && b.x.c.sr.stalled:
		err = fmt.Errorf("%w: %w", &appconn.StallError{Limit: b.x.h.stall}, err)
	}
	return n, err
}

// NotifyBeforeWait calls f before a read that may wait for the app (relay.WaitNotifier).
func (b *answerBody) NotifyBeforeWait(f func()) { b.out.beforeBlock = f }

// Close ends the exchange. After END_REQUEST the connection is reusable only if the app took the whole
// request (the writer finished without error) and the request was not cancelled; otherwise, and when the
// body was not read to its end, it is closed (never back to the pool).
func (b *answerBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	x, c := b.x, b.x.c
	defer b.out.errlog.flush()
	keep := false
	if b.eof {
		werr := x.waitWriter()
		keep = x.h.keepConn && werr == nil && b.out.end.ProtocolStatus == statusRequestComplete && x.stop()
	} else {
		c.nc.Close()
		x.waitWriter()
	}
	x.stop()
	c.sr.unwatch()
	if keep {
		x.h.pool.put(c)
	} else {
		c.nc.Close()
	}
	return nil
}

// waitWriter stops the writer and returns its error. A writer blocked on the client's body is woken by an
// expired read deadline on the client connection; one blocked writing to the app is woken by the
// connection being closed, or by the app, which drops a connection carrying records for a request it
// already ended. A writer that is only finishing is left to finish. Then the client's body is ended
// (clientbody.End: the rest read, or the connection closed after the answer, the deadline lifted). Waking
// a read fails it, which makes net/http cancel the request's context: so waitWriter comes after the
// answer, or where the answer no longer matters.
func (x *roundTrip) waitWriter() error {
	if x.writerFinished {
		return x.writerErr
	}
	x.mu.Lock()
	x.stopping = true
	woke := x.clientStream && x.inBodyRead && x.rc.SetReadDeadline(time.Unix(1, 0)) == nil
	x.mu.Unlock()
	x.writerErr = <-x.writeDone
	x.writerFinished = true
	if x.clientStream {
		clientbody.End(x.w, x.r.Body, x.r.ContentLength-x.bodyRead, woke, x.bodyErr)
	}
	return x.writerErr
}

// stopWriter stops the writer unless it is blocked reading the client's body, which only waitWriter may
// wake; it reports whether the writer has finished, and with which error.
func (x *roundTrip) stopWriter() (error, bool) {
	if x.writerFinished {
		return x.writerErr, true
	}
	x.mu.Lock()
	x.stopping = true
	reading := x.inBodyRead
	x.mu.Unlock()
	if reading {
		return nil, false
	}
	x.writerErr = <-x.writeDone
	x.writerFinished = true
	return x.writerErr, true
}

// retryable reports whether err is what a connection closed by the app while idle looks like.
func retryable(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip is the state of one request on one connection (one run of Handler.exchange), shared by the
// reader and the writer, and then by the answer's Body.
type roundTrip struct {
	h           *Handler
	ctx         context.Context // the request's: a renewed deadline must not undo its cancellation
	c           *conn
	id          uint16
	rc          *http.ResponseController
	stop        func() bool // stops the context.AfterFunc that expires the connection on cancellation
	bodyStarted bool        // written by the writer only; read after it finished
	bodyRead    int64       // bytes of the body read, likewise
	bodyErr     error       // the first error reading the body returned other than io.EOF, likewise

	mu         sync.Mutex
	gotHead    bool // the response header is complete: no more read deadline
	stopping   bool // the reader is done: the writer must not start another body read
	inBodyRead bool // the writer is blocked reading the client's body

	// The writer of a request with a body, used by the reader's goroutine only.
	writeDone      chan error          // the writer's result
	writerFinished bool                // the writer's result was taken (or there is no writer)
	writerErr      error               // that result
	clientStream   bool                // the body is r.Body, the client's own stream
	w              http.ResponseWriter // the client's, for ending its body (clientbody)
	r              *http.Request

	// The answer RoundTrip returns, and its Body.
	res    http.Response
	answer answerBody
}

// errStopped ends a writer whose request is already over.
var errStopped = errors.New("the response ended before the request body was sent")

// extendHeaderDeadline gives the app another timeout to answer, unless its header is already complete.
func (x *roundTrip) extendHeaderDeadline() {
	x.mu.Lock()
	if !x.gotHead {
		_ = x.c.nc.SetReadDeadline(time.Now().Add(x.h.timeout))
		appconn.Keep(x.ctx, x.c.nc)
	}
	x.mu.Unlock()
}

// headerDone lifts the head's read deadline: from now on the connection's stallReader keeps the body's
// stall limit (read_timeout), so a body may stream for as long as bytes keep coming.
func (x *roundTrip) headerDone(ctx context.Context) {
	x.mu.Lock()
	x.gotHead = true
	_ = x.c.nc.SetReadDeadline(time.Time{})
	x.mu.Unlock()
	appconn.Keep(ctx, x.c.nc)
	x.c.sr.watch(ctx, x.h.stall)
}

// writeRequest sends BEGIN_REQUEST, the PARAMS stream and the STDIN stream. A failure closes the
// connection so the reader stops too; a failure to read the client's body is marked with failure.ClientBody.
func (x *roundTrip) writeRequest(records [][]byte, body io.Reader) (err error) {
	c := x.c
	defer func() {
		if err != nil {
			c.nc.Close()
		}
	}()
	flush := func() error {
		_ = c.nc.SetWriteDeadline(time.Now().Add(x.h.timeout))
		appconn.Keep(x.ctx, c.nc)
		if err := c.bw.Flush(); err != nil {
			return err
		}
		x.extendHeaderDeadline()
		return nil
	}
	if err := writeBeginRequest(c.bw, x.id, x.h.keepConn); err != nil {
		return err
	}
	for _, rec := range records {
		if err := writeRecord(c.bw, typeParams, x.id, rec); err != nil {
			return err
		}
	}
	if err := writeRecord(c.bw, typeParams, x.id, nil); err != nil {
		return err
	}
	if body != nil {
		if err := flush(); err != nil {
			return err
		}
		bp := x.h.buf()
		defer x.h.bufs.Put(bp)
		buf := *bp
		for {
			x.bodyStarted = true
			x.mu.Lock()
			if x.stopping {
				x.mu.Unlock()
				return errStopped
			}
			x.inBodyRead = true
			x.mu.Unlock()
			n, rerr := body.Read(buf)
			x.mu.Lock()
			x.inBodyRead = false
			x.mu.Unlock()
			x.bodyRead += int64(n)
			if rerr != nil && rerr != io.EOF && x.bodyErr == nil {
				x.bodyErr = rerr
			}
			if n > 0 {
				if err := writeRecord(c.bw, typeStdin, x.id, buf[:n]); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return failure.ClientBody(rerr)
			}
		}
	}
	if err := writeRecord(c.bw, typeStdin, x.id, nil); err != nil {
		return err
	}
	return flush()
}

// stdout reads the STDOUT stream of one request, logging STDERR on the way, until END_REQUEST (io.EOF).
// Any other outcome is an error, also kept in err so it survives cgienv's wrapping.
type stdout struct {
	rr          recordReader
	id          uint16
	errlog      stderrLog
	end         *endRequest
	err         error
	records     int
	beforeBlock func() // called before a read that may wait for the app
	scratch     [8]byte
}

func (s *stdout) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.end != nil {
		return 0, io.EOF
	}
	n, err := s.read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

func (s *stdout) mayBlock() {
	if s.beforeBlock != nil && !s.rr.Buffered() {
		s.beforeBlock()
	}
}

func (s *stdout) read(p []byte) (int, error) {
	for {
		if s.rr.remaining > 0 && s.rr.hdr.Type == typeStdout {
			s.mayBlock()
			n, err := s.rr.Read(p)
			if err != nil {
				return n, fmt.Errorf("reading STDOUT: %w", err)
			}
			return n, nil
		}
		s.mayBlock()
		h, err := s.rr.Next()
		if err != nil {
			if err == io.EOF {
				return 0, fmt.Errorf("the application closed the connection before END_REQUEST: %w", io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		s.records++
		if h.ID != s.id {
			if h.ID == 0 && (h.Type == typeUnknownType || h.Type == typeGetValuesResult) {
				continue // a management record: nothing for this request
			}
			return 0, fmt.Errorf("%w: record type %d for request %d while serving request %d", ErrProtocol, h.Type, h.ID, s.id)
		}
		switch h.Type {
		case typeStdout:
		case typeStderr:
			if err := s.errlog.readFrom(&s.rr); err != nil {
				return 0, fmt.Errorf("reading STDERR: %w", err)
			}
		case typeEndRequest:
			b, err := s.rr.readContent(s.scratch[:])
			if err != nil {
				return 0, fmt.Errorf("reading END_REQUEST: %w", err)
			}
			e, err := parseEndRequest(b)
			if err != nil {
				return 0, err
			}
			s.end = &e
			if e.ProtocolStatus != statusRequestComplete {
				return 0, fmt.Errorf("%w: request refused: %s", ErrProtocol, e)
			}
			return 0, io.EOF
		default:
			return 0, fmt.Errorf("%w: unexpected record type %d", ErrProtocol, h.Type)
		}
	}
}

// stderrLog turns the STDERR stream into log lines, bounded per request.
type stderrLog struct {
	h       *Handler
	ctx     context.Context
	line    []byte
	lines   int
	dropped int
	chunk   [1024]byte
}

const (
	maxStderrLines    = 20
	maxStderrLineSize = 1024
)

func (l *stderrLog) readFrom(rr *recordReader) error {
	for {
		n, err := rr.Read(l.chunk[:])
		for _, b := range l.chunk[:n] {
			if b == '\n' {
				l.emit()
				continue
			}
			if len(l.line) < maxStderrLineSize {
				l.line = append(l.line, b)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (l *stderrLog) emit() {
	if l.lines >= maxStderrLines {
		l.dropped++
		l.line = l.line[:0]
		return
	}
	l.lines++
	l.h.logger.LogAttrs(l.ctx, slog.LevelWarn, "application stderr",
		slog.String("app", l.h.app), slog.String("upstream", l.h.upstream), slog.String("line", string(l.line)))
	l.line = l.line[:0]
}

// flush logs a last unterminated line and how many lines were dropped.
func (l *stderrLog) flush() {
	if len(l.line) > 0 {
		l.emit()
	}
	if l.dropped > 0 {
		l.h.logger.LogAttrs(l.ctx, slog.LevelWarn, "application stderr lines dropped",
			slog.String("app", l.h.app), slog.String("upstream", l.h.upstream), slog.Int("dropped", l.dropped))
	}
}
