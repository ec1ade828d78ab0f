// Package delegate owns the ways one request can be shared between applications: the fall-through cascade
// (the primary answers first, a pass status hands the request to the next application), the in-process
// fall-through for chi routers, and, for migrations, splits and shadow copies.
package delegate

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/switchyard/switchyard/reqinfo"
)

// DefaultBodyLimit is how much request body a Cascade holds when BodyLimit is 0.
const DefaultBodyLimit = 4 << 20

// App is one application in a cascade.
type App struct {
	// Name identifies the app in logs and in reqinfo (the configured APP URL, or a name given in Go code).
	Name    string
	Handler http.Handler
	// PassHeader, when not empty, is a response header (canonical form, e.g. "X-Switchyard-Pass") the app
	// sends to say "this path is not mine": only an answer with a pass status and this header passes on,
	// so a pass status alone (a real page's 404) is final. The header never reaches the client: it is
	// removed from every answer of this app, passed on or not, and whichever position the app holds.
	PassHeader string
	// FallBack lets the next app serve a request this app never received (nginx's proxy_next_upstream
	// error): when the app fails before any byte of the request reached it (failure.Unsent: its connection
	// could not be opened, no instance was available) and answers that failure with failure.Answer, the
	// request passes on as if the app had answered a pass status. Any method passes on, and the next app
	// gets the body whole: the held copy, or, for a body too large to hold, the client's own stream, only
	// when nothing of it was read yet. The Cascade logs one warning for such a request (route, app,
	// upstream, next app, cause) and records it in reqinfo (Info.Unreached), where the migration report
	// counts it. A failure after the connection was opened (a reset, a timeout waiting for the answer) is
	// answered as before (502, 504), and the last app's failures are final. false: every failure is
	// answered.
	FallBack bool
}

// Cascade serves a request with its first app and, while the answer's status is a pass status, with the
// next one; the client sees only the final answer. The last app's answer is always final, whatever its
// status.
//
// Body contract: to re-send a request, the Cascade reads the request body into memory first, up to
// BodyLimit bytes. A body that is declared or turns out to be larger is not held: the first app receives it
// streamed (the held part followed by the rest) and its answer is final, whatever its status; the Cascade
// logs that it did so. Each app receives its own copy of the request (headers cloned for all but the last),
// with ContentLength set to the held size, so an app that mutates its request cannot affect the next one.
// A held copy carries GetBody: adapters take it as the mark of a body that never waits on the client.
//
// An app with a PassHeader passes only answers that carry a pass status and that header (see App). An app
// with a FallBack also passes a request it never received (see App).
//
// Response contract: until an app's status is known, its header and body are held in the Cascade; a pass
// answer is discarded (headers, cookies and body), anything else is sent on and streamed from then on
// (Flush and Hijack reach the client's connection, so event streams and WebSockets work through a cascade).
// 1xx informational answers of an app that may still pass are dropped.
type Cascade struct {
	Apps []App
	// Pass reports whether a status passes the request on; nil means only 404.
	Pass func(status int) bool
	// BodyLimit is the request body size held for re-sending; 0 means DefaultBodyLimit, negative means
	// bodies are never held (any request with a body is final at the first app).
	BodyLimit int64
	// Logger receives one line when a body is too large to cascade; nil means slog.Default().
	Logger *slog.Logger
}

// StatusSet returns a Pass function for the given statuses.
func StatusSet(statuses ...int) func(int) bool {
	var set [1000]bool
	for _, s := range statuses {
		if s >= 100 && s < 1000 {
			set[s] = true
		}
	}
	return func(s int) bool { return s >= 0 && s < len(set) && set[s] }
}

// Passes reports whether an answer's status passes the request on to the next app (Pass; nil: 404).
func (c *Cascade) Passes(status int) bool {
	if c.Pass == nil {
		return status == http.StatusNotFound
	}
	return c.Pass(status)
}

func (c *Cascade) logger() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.Default()
}

// ServeHTTP implements the cascade.
func (c *Cascade) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := reqinfo.From(r.Context())
	switch len(c.Apps) {
	case 0:
		http.Error(w, "502 no application configured", http.StatusBadGateway)
		return
	case 1:
		info.Tried(c.Apps[0].Name)
		c.Apps[0].serveFinal(w, r)
		return
	}

	body, final, err := c.holdBody(r)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "413 request body larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout(): // checked first: net/http cancels the context on it too
			w.Header().Set("Connection", "close")
			http.Error(w, "408 request body not received in time", http.StatusRequestTimeout)
		case r.Context().Err() != nil: // the client is gone: nobody to answer
		default:
			http.Error(w, "400 could not read request body", http.StatusBadRequest)
		}
		return
	}
	if final {
		if limit := c.bodyLimit(); limit < 0 {
			// (logged at debug: with holding off, every request with a body takes this way)
			c.logger().Debug("cascade: request bodies are not held (body limit 0); the first app's answer is final",
				"app", c.Apps[0].Name, "content_length", r.ContentLength, "path", r.URL.Path)
		} else {
			c.logger().Info("cascade: request body too large to hold for re-sending; the first app's answer is final",
				"app", c.Apps[0].Name, "limit", limit, "content_length", r.ContentLength, "path", r.URL.Path)
		}
		info.Tried(c.Apps[0].Name)
		if !c.Apps[0].FallBack {
			c.Apps[0].serveFinal(w, r)
			return
		}
		// The first app's answer is final, unless it never received the request and the stream is as the
		// client sent it: then the next app gets the stream, as final. Held until its status is known, that
		// answer loses its 1xx informational heads (103 Early Hints), as any answer that may pass does.
		tb := &trackedBody{rc: r.Body}
		r2 := new(http.Request)
		*r2 = *r
		r2.Body = tb
		pw := passWriters.Get().(*passWriter)
		pw.w, pw.c, pw.passHeader, pw.fallBack, pw.finalOnly, pw.body = w, c, c.Apps[0].PassHeader, true, true, tb
		c.Apps[0].Handler.ServeHTTP(pw, r2)
		if !pw.decided {
			if r.Context().Err() != nil { // (as below)
				pw.release()
				return
			}
			pw.WriteHeader(http.StatusOK)
		}
		unsent := pw.unsent
		pw.release()
		if unsent == nil {
			return
		}
		c.fellBack(r, info, c.Apps[0], c.Apps[1], unsent)
		info.Tried(c.Apps[1].Name)
		c.Apps[1].serveFinal(w, r)
		return
	}

	last := len(c.Apps) - 1
	for i, app := range c.Apps {
		info.Tried(app.Name)
		if i == last {
			app.serveFinal(w, lastRequest(r, body))
			return
		}
		req := withBody(r, body, true)
		pw := passWriters.Get().(*passWriter)
		pw.w, pw.c, pw.passHeader, pw.fallBack = w, c, app.PassHeader, app.FallBack
		app.Handler.ServeHTTP(pw, req)
		if !pw.decided {
			if r.Context().Err() != nil {
				// The client left and the app answered nothing (its 499): nothing to answer, as without
				// a cascade, not an empty 200 made up for a client that may still read.
				pw.release()
				return
			}
			pw.WriteHeader(http.StatusOK) // an app that wrote nothing answered 200 with no body
		}
		passed, unsent := pw.passed, pw.unsent
		pw.release()
		if !passed {
			return
		}
		if unsent != nil {
			c.fellBack(r, info, app, c.Apps[i+1], unsent)
		}
		if r.Context().Err() != nil {
			return // the client is gone: asking the next app is wasted work
		}
	}
}

// unsentFailure is how an app failed before any byte of the request reached it (passWriter.FallBack).
type unsentFailure struct {
	upstream string
	err      error
}

// fellBack logs the one line of a request that app never received and next serves instead, and records it.
func (c *Cascade) fellBack(r *http.Request, info *reqinfo.Info, app, next App, u *unsentFailure) {
	c.logger().LogAttrs(r.Context(), slog.LevelWarn, "app not reached: the next app serves the request",
		slog.String("route", info.Snapshot().Route), slog.String("app", app.Name), slog.String("upstream", u.upstream),
		slog.String("next", next.Name), slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("cause", u.err.Error()))
	info.Unreached(app.Name)
}

// trackedBody is the client's body stream handed to an app that may fall back (App.FallBack) when the body
// could not be held: it notes whether the app read from it, and keeps the stream open for the next app
// until then (an app that fails to connect closes the body it was given, as http.Transport does).
type trackedBody struct {
	rc      io.ReadCloser
	touched atomic.Bool // read by FallBack while the app's transport may be reading
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	return b.rc.Read(p)
}

// Close closes the stream once the app has read from it; before that, the stream is still the next app's
// and the server closes it when the request ends.
func (b *trackedBody) Close() error {
	if b.wasTouched() {
		return b.rc.Close()
	}
	return nil
}

func (b *trackedBody) wasTouched() bool { return b.touched.Load() }

// lastRequest is the request the last app gets: r itself when nothing about its body changes (no copy
// per request), else a copy reading the held body.
func lastRequest(r *http.Request, body []byte) *http.Request {
	if body == nil && (r.Body == nil || r.Body == http.NoBody) {
		return r
	}
	return withBody(r, body, false)
}

// HoldLimit is the longest request body the Cascade holds for re-sending (0: it holds none); a request
// with a longer one is final at the first app.
func (c *Cascade) HoldLimit() int64 {
	return max(c.bodyLimit(), 0)
}

func (c *Cascade) bodyLimit() int64 {
	if c.BodyLimit == 0 {
		return DefaultBodyLimit
	}
	return c.BodyLimit
}

// holdBody reads the request body for re-sending. final reports that it is too large: r.Body has then been
// replaced by a reader yielding the held part followed by the rest, and only one app may see it.
func (c *Cascade) holdBody(r *http.Request) (body []byte, final bool, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, false, nil
	}
	limit := c.bodyLimit()
	if limit < 0 || r.ContentLength > limit {
		return nil, true, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, false, err
	}
	if n > limit {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf.Bytes()), r.Body), r.Body}
		return nil, true, nil
	}
	return buf.Bytes(), false, nil
}

// withBody returns a shallow copy of r reading body; with cloneHeader the header map is copied too.
func withBody(r *http.Request, body []byte, cloneHeader bool) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	if cloneHeader {
		r2.Header = r.Header.Clone()
	}
	if body == nil {
		if r.Body != nil && r.Body != http.NoBody {
			r2.Body = http.NoBody
			r2.ContentLength = 0
		}
		return r2
	}
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	r2.TransferEncoding = nil
	if len(r.Trailer) > 0 {
		// Trailers travel only after a chunked body: the copy keeps the length unknown so the app still
		// gets the client's trailers (whose values are all in r.Trailer, the body having been read).
		r2.ContentLength = -1
		r2.TransferEncoding = []string{"chunked"}
	}
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return r2
}

// passWriter holds an app's answer until its status says whether it passes. passWriters are pooled with
// their header maps: one is taken per app that may pass and released once that app's ServeHTTP returns
// (after which, by the http.Handler contract, the app no longer uses it).
type passWriter struct {
	w          http.ResponseWriter
	c          *Cascade
	passHeader string // the app's PassHeader
	header     http.Header
	decided    bool
	passed     bool

	// fallBack says the app may fall back (App.FallBack); finalOnly that its answers are final otherwise
	// (its request has the client's stream, body, which must be untouched for a fall back); unsent is the
	// failure it fell back on.
	fallBack, finalOnly bool
	body                *trackedBody
	unsent              *unsentFailure
}

var passWriters = sync.Pool{New: func() any { return &passWriter{header: make(http.Header)} }}

// release clears p and returns it to the pool. The header values an answer sent on were copied into the
// client's header map as slices; clearing the map leaves those slices alone.
func (p *passWriter) release() {
	clear(p.header)
	*p = passWriter{header: p.header}
	passWriters.Put(p)
}

func (p *passWriter) Header() http.Header {
	if p.decided && !p.passed {
		return p.w.Header()
	}
	return p.header
}

func (p *passWriter) WriteHeader(code int) {
	if p.decided {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		return
	}
	p.decided = true
	if !p.finalOnly && p.c.Passes(code) && (p.passHeader == "" || p.header[p.passHeader] != nil) {
		p.passed = true
		return
	}
	dst := p.w.Header()
	for k, v := range p.header {
		dst[k] = v
	}
	if p.passHeader != "" {
		delete(dst, p.passHeader)
	}
	p.w.WriteHeader(code)
}

func (p *passWriter) Write(b []byte) (int, error) {
	if !p.decided {
		p.WriteHeader(http.StatusOK)
	}
	if p.passed {
		return len(b), nil
	}
	return p.w.Write(b)
}

// WriteString is Write for strings, without a copy when the client's writer takes strings too.
func (p *passWriter) WriteString(s string) (int, error) {
	if !p.decided {
		p.WriteHeader(http.StatusOK)
	}
	if p.passed {
		return len(s), nil
	}
	return io.WriteString(p.w, s)
}

// Flush sends buffered data to the client once the answer is known to be final.
func (p *passWriter) Flush() {
	if !p.decided {
		p.WriteHeader(http.StatusOK)
	}
	if !p.passed {
		_ = http.NewResponseController(p.w).Flush()
	}
}

// FallBack takes the request over when the app never received it (failure.FallBacker): with the app's
// FallBack set, before any answer, and, for the client's own stream, with nothing of it read. The
// request then passes on to the next app.
func (p *passWriter) FallBack(_, upstream string, err error) bool {
	if !p.fallBack || p.decided || p.body != nil && p.body.wasTouched() {
		return false
	}
	p.decided, p.passed = true, true
	p.unsent = &unsentFailure{upstream: upstream, err: err}
	return true
}

// Hijack makes this app's answer final (a protocol switch cannot be passed on) and hands over the client's
// connection.
func (p *passWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if p.passed {
		return nil, nil, errors.New("delegate: hijack after the answer was passed on")
	}
	if !p.decided {
		p.decided = true
		dst := p.w.Header()
		for k, v := range p.header {
			dst[k] = v
		}
		if p.passHeader != "" {
			delete(dst, p.passHeader)
		}
	}
	return http.NewResponseController(p.w).Hijack()
}

// Unwrap lets http.ResponseController reach the client's writer for deadlines and full duplex.
func (p *passWriter) Unwrap() http.ResponseWriter { return p.w }

// serveFinal serves r with a whose answer is final: only the PassHeader, when a has one, is removed from
// it on the way to the client.
func (a App) serveFinal(w http.ResponseWriter, r *http.Request) {
	if a.PassHeader == "" {
		a.Handler.ServeHTTP(w, r)
		return
	}
	a.Handler.ServeHTTP(&dropHeaderWriter{ResponseWriter: w, name: a.PassHeader}, r)
}

// dropHeaderWriter removes one header from an answer just before each head (informational ones
// included) is sent.
type dropHeaderWriter struct {
	http.ResponseWriter
	name string
	sent bool // the final head is out: nothing more to remove
}

func (d *dropHeaderWriter) drop() {
	if !d.sent {
		d.sent = true
		delete(d.ResponseWriter.Header(), d.name)
	}
}

func (d *dropHeaderWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		delete(d.ResponseWriter.Header(), d.name) // the final head may still get it: not sent yet
		d.ResponseWriter.WriteHeader(code)
		return
	}
	d.drop()
	d.ResponseWriter.WriteHeader(code)
}

func (d *dropHeaderWriter) Write(b []byte) (int, error) {
	d.drop()
	return d.ResponseWriter.Write(b)
}

// Flush sends the head (without the header) and what is buffered.
func (d *dropHeaderWriter) Flush() {
	d.drop()
	_ = http.NewResponseController(d.ResponseWriter).Flush()
}

// Hijack hands over the client's connection; the head is the app's business from then on.
func (d *dropHeaderWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	d.drop()
	return http.NewResponseController(d.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach the client's writer for deadlines and full duplex.
func (d *dropHeaderWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
