package delegate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ShadowHeader marks a shadow copy, so the shadow app can tell it apart from real traffic (and, for an
// unsafe method, refrain from side effects such as sending mail or charging a card).
const ShadowHeader = "X-Switchyard-Shadow"

// Defaults of a Shadow whose options are zero.
const (
	DefaultShadowWorkers     = 4
	DefaultShadowQueue       = 256
	DefaultShadowBodyLimit   = 1 << 20
	DefaultShadowAnswerLimit = 1 << 20
	DefaultShadowTimeout     = 30 * time.Second
)

// Answer is one captured response: status, header, and at most the configured number of body bytes.
type Answer struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	// Body is the first bytes of the body, up to the Shadow's AnswerLimit.
	Body []byte `json:"body,omitempty"`
	// Truncated reports that the body was longer than Body.
	Truncated bool `json:"truncated,omitempty"`
	// Err says why there is no complete answer ("aborted", "timeout", ...); "" when there is one.
	Err      string        `json:"error,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// Exchange is one shadowed request with the answer the client got and the shadow app's answer.
type Exchange struct {
	Method string
	Host   string
	Path   string
	Query  string
	Served Answer
	Shadow Answer
}

// ShadowOptions configure a Shadow. Zero values mean the defaults above.
type ShadowOptions struct {
	// Methods are the methods copied; nil means GET, HEAD and OPTIONS (safe methods only).
	Methods []string
	// Workers is the number of goroutines sending copies.
	Workers int
	// Queue is how many copies may wait for a worker; past it copies are dropped and counted.
	Queue int
	// BodyLimit is the request body held for the copy. A larger body (or one the serving app did not read
	// to the end) is not copied, and the copy is counted as skipped. Negative: requests with a body are
	// never copied.
	BodyLimit int64
	// AnswerLimit is how many body bytes of each answer are kept for comparison; the rest of the shadow
	// app's body is read and discarded.
	AnswerLimit int64
	// Timeout bounds each copy.
	Timeout time.Duration
	// Observe receives every completed exchange, on a worker goroutine. It must not block for long: it
	// holds up that worker.
	Observe func(Exchange)
	// Logger receives one line per failed copy at debug level; nil means slog.Default().
	Logger *slog.Logger
}

// ShadowStats are a Shadow's counters since it was built.
type ShadowStats struct {
	// Queued copies were accepted; Completed finished (with an answer or an error).
	Queued, Completed uint64
	// Dropped copies found the queue full (or the Shadow closed).
	Dropped uint64
	// Skipped requests were eligible but could not be copied: body too large or not read to the end by
	// the serving app, or the connection was hijacked (a protocol switch).
	Skipped uint64
}

// Shadow serves every request with Serve and sends a copy of eligible ones to Copy, asynchronously, then
// hands both answers to Observe.
//
// The client's answer is Serve's, unchanged and streamed as Serve writes it: the Shadow only records the
// status, the header and the first AnswerLimit body bytes on the way. Nothing the copy does can delay or
// break the served request: the copy is queued, without blocking, after Serve has returned, into a
// bounded queue read by a fixed number of workers; a full queue drops the copy (counted in Dropped).
//
// Request body: as Serve reads the body, up to BodyLimit bytes are kept for the copy (a tee, so Serve never
// waits); if the body was larger, or Serve did not read it to the end, there is no copy. The copy carries
// a clone of the original request header plus ShadowHeader: 1, and a context of its own (never the
// client's, which ends with the request, and without the client's reqinfo record, so the copy is not
// counted as an answer to the client).
//
// Close stops the workers; copies still queued are discarded.
type Shadow struct {
	serve, copy http.Handler
	opts        ShadowOptions
	methods     map[string]bool
	jobs        chan shadowJob
	stop        chan struct{}
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	closeOnce   sync.Once

	queued, completed, dropped, skipped atomic.Uint64
}

type shadowJob struct {
	req    *http.Request // context replaced by the worker
	body   []byte
	served Answer
}

// NewShadow returns a Shadow serving with serve and copying to shadow, and starts its workers.
func NewShadow(serve, shadow http.Handler, opts ShadowOptions) *Shadow {
	if opts.Workers <= 0 {
		opts.Workers = DefaultShadowWorkers
	}
	if opts.Queue <= 0 {
		opts.Queue = DefaultShadowQueue
	}
	if opts.BodyLimit == 0 {
		opts.BodyLimit = DefaultShadowBodyLimit
	}
	if opts.AnswerLimit <= 0 {
		opts.AnswerLimit = DefaultShadowAnswerLimit
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultShadowTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	methods := opts.Methods
	if methods == nil {
		methods = []string{http.MethodGet, http.MethodHead, http.MethodOptions}
	}
	s := &Shadow{serve: serve, copy: shadow, opts: opts, methods: map[string]bool{},
		jobs: make(chan shadowJob, opts.Queue), stop: make(chan struct{})}
	for _, m := range methods {
		s.methods[strings.ToUpper(m)] = true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(opts.Workers)
	for i := 0; i < opts.Workers; i++ {
		go s.work()
	}
	return s
}

// Stats returns the counters.
func (s *Shadow) Stats() ShadowStats {
	return ShadowStats{Queued: s.queued.Load(), Completed: s.completed.Load(), Dropped: s.dropped.Load(), Skipped: s.skipped.Load()}
}

// Close stops the workers and waits for them; a copy in flight is cancelled. Requests served after Close
// are still served, never copied.
func (s *Shadow) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.cancel()
	})
	s.wg.Wait()
	return nil
}

// ServeHTTP serves r with the serving app and queues a copy for the shadow app.
func (s *Shadow) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.methods[r.Method] {
		s.serve.ServeHTTP(w, r)
		return
	}
	hdr := r.Header.Clone()
	var tee *teeBody
	r2 := r
	if r.Body != nil && r.Body != http.NoBody {
		if s.opts.BodyLimit < 0 || r.ContentLength > s.opts.BodyLimit {
			s.skipped.Add(1)
			s.serve.ServeHTTP(w, r)
			return
		}
		tee = &teeBody{rc: r.Body, limit: s.opts.BodyLimit}
		r2 = new(http.Request)
		*r2 = *r
		r2.Body = tee
	}
	cw := &captureWriter{ResponseWriter: w, limit: s.opts.AnswerLimit}
	start := time.Now()
	s.serve.ServeHTTP(cw, r2)
	if cw.hijacked || (tee != nil && (!tee.eof || tee.over)) {
		s.skipped.Add(1)
		return
	}
	served := cw.answer()
	served.Duration = time.Since(start)
	var body []byte
	if tee != nil {
		body = tee.buf.Bytes()
	}
	req := &http.Request{
		Method: r.Method, URL: cloneURL(r), Proto: r.Proto, ProtoMajor: r.ProtoMajor, ProtoMinor: r.ProtoMinor,
		Header: hdr, Host: r.Host, RemoteAddr: r.RemoteAddr, RequestURI: r.RequestURI,
		ContentLength: int64(len(body)), Body: http.NoBody,
	}
	req.Header.Set(ShadowHeader, "1")
	select {
	case <-s.stop:
		s.dropped.Add(1)
		return
	default:
	}
	select {
	case s.jobs <- shadowJob{req: req, body: body, served: served}:
		s.queued.Add(1)
	default:
		s.dropped.Add(1)
	}
}

func cloneURL(r *http.Request) *url.URL {
	u := *r.URL
	if u.User != nil {
		uu := *u.User
		u.User = &uu
	}
	return &u
}

func (s *Shadow) work() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case job := <-s.jobs:
			ex := s.send(job)
			s.completed.Add(1)
			if s.opts.Observe != nil {
				s.opts.Observe(ex)
			}
		}
	}
}

// send runs one copy through the shadow app, recovering from a panicking (aborting) handler.
func (s *Shadow) send(job shadowJob) (ex Exchange) {
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.Timeout)
	defer cancel()
	req := job.req.WithContext(ctx)
	if job.body != nil {
		req.Body = io.NopCloser(bytes.NewReader(job.body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(job.body)), nil }
	}
	ex = Exchange{Method: req.Method, Host: req.Host, Path: req.URL.Path, Query: req.URL.RawQuery, Served: job.served}
	rec := &recordWriter{header: http.Header{}, limit: s.opts.AnswerLimit}
	start := time.Now()
	defer func() {
		ex.Shadow = rec.answer()
		ex.Shadow.Duration = time.Since(start)
		if p := recover(); p != nil {
			ex.Shadow.Err = "aborted"
			if p != http.ErrAbortHandler {
				ex.Shadow.Err = fmt.Sprintf("panic: %v", p)
			}
		}
		if ex.Shadow.Err == "" && ctx.Err() != nil {
			ex.Shadow.Err = "timeout"
			if errors.Is(ctx.Err(), context.Canceled) {
				ex.Shadow.Err = "cancelled"
			}
		}
		if ex.Shadow.Err != "" {
			s.opts.Logger.Debug("shadow copy failed", "method", ex.Method, "path", ex.Path, "cause", ex.Shadow.Err)
		}
	}()
	s.copy.ServeHTTP(rec, req)
	if !rec.wroteHeader && ctx.Err() == nil {
		rec.WriteHeader(http.StatusOK) // an app that wrote nothing answered 200 with no body
	}
	return ex
}

// teeBody keeps up to limit bytes of what the serving app reads.
type teeBody struct {
	rc    io.ReadCloser
	buf   bytes.Buffer
	limit int64
	over  bool
	eof   bool
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if n > 0 && !t.over {
		if int64(t.buf.Len()+n) > t.limit {
			t.over = true
			t.buf = bytes.Buffer{}
		} else {
			t.buf.Write(p[:n])
		}
	}
	if err == io.EOF {
		t.eof = true
	}
	return n, err
}

func (t *teeBody) Close() error { return t.rc.Close() }

// captureWriter passes the served answer through to the client, keeping a bounded copy.
type captureWriter struct {
	http.ResponseWriter
	limit    int64
	status   int
	header   http.Header
	body     bytes.Buffer
	trunc    bool
	hijacked bool
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 && (code < 100 || code > 199) {
		c.status = code
		c.header = c.ResponseWriter.Header().Clone()
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	c.keep(b)
	return c.ResponseWriter.Write(b)
}

func (c *captureWriter) keep(b []byte) {
	room := c.limit - int64(c.body.Len())
	if int64(len(b)) > room {
		b = b[:max(room, 0)]
		c.trunc = true
	}
	c.body.Write(b)
}

func (c *captureWriter) Flush() {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

func (c *captureWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c.hijacked = true
	return http.NewResponseController(c.ResponseWriter).Hijack()
}

func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (c *captureWriter) answer() Answer {
	if c.status == 0 {
		c.status = http.StatusOK
		c.header = c.ResponseWriter.Header().Clone()
	}
	return Answer{Status: c.status, Header: c.header, Body: c.body.Bytes(), Truncated: c.trunc}
}

// recordWriter is the shadow app's ResponseWriter: it keeps the status, header and a bounded body.
type recordWriter struct {
	header      http.Header
	status      int
	sentHeader  http.Header
	body        bytes.Buffer
	limit       int64
	trunc       bool
	wroteHeader bool
}

func (w *recordWriter) Header() http.Header { return w.header }

func (w *recordWriter) WriteHeader(code int) {
	if w.wroteHeader || (code >= 100 && code <= 199) {
		return
	}
	w.wroteHeader = true
	w.status = code
	w.sentHeader = w.header.Clone()
}

func (w *recordWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	room := w.limit - int64(w.body.Len())
	keep := b
	if int64(len(keep)) > room {
		keep = keep[:max(room, 0)]
		w.trunc = true
	}
	w.body.Write(keep)
	return len(b), nil
}

func (w *recordWriter) Flush() {}

func (w *recordWriter) answer() Answer {
	if !w.wroteHeader {
		return Answer{Status: 0, Header: w.header.Clone(), Err: "no answer"}
	}
	return Answer{Status: w.status, Header: w.sentHeader, Body: w.body.Bytes(), Truncated: w.trunc}
}
