// Package relay writes an app's answer to the client: the one response relay behind the FastCGI, uwsgi
// and SCGI transports and the HTTP adapter (its direct path, h1 round trip + relay, and its relayed path;
// protocol switches excepted).
//
// A transport (Transport) turns a request into an *http.Response whose Body streams the rest of the app's
// answer; Serve hands it the request and writes what it returns with Write. What differs between app
// kinds is declared, never paid for by a kind that does not declare it: Options.CGIHead (a CGI head's
// length), Options.Spool (request bodies of known length only) and, on the Body, WaitNotifier (when the
// next read would wait). The contract:
//
//   - Ownership: the Response and its Body belong to the relay once RoundTrip returns them. Write closes
//     the Body exactly once, on every path (a clean end, the client gone, an abort), and only after its last
//     Read: closing it ends the exchange, and the transport decides there whether the connection goes back
//     to its pool (the body read to io.EOF) or is closed (anything else).
//   - Copied: every header field of the Response but the hop-by-hop ones and those its Connection field
//     names (internal/hopbyhop, the one list), as the app sent them (an HTTP head: its Content-Length is
//     the framing h1 read by, passed as httputil.ReverseProxy passes it); with Options.CGIHead,
//     Content-Length is the Response's ContentLength instead (the script's own field is dropped), omitted
//     when unknown (-1) and for 204 and 304. Trailers the Response announces (Response.Trailer's keys) are
//     announced to the client and set after the body, unannounced ones sent with http.TrailerPrefix.
//   - Flushed: what was written goes out before the next read of the Body that would wait for the app,
//     never on a read served from what is already buffered. A Body implementing WaitNotifier says when:
//     every written piece is flushed there, the head with the first body bytes (so the server may sniff a
//     missing Content-Type from them, as behind ReverseProxy), or at once when the length is unknown and
//     the request has no body (so such an answer is chunked, as ReverseProxy sends it). A Body that cannot
//     say is taken to wait at every read of a streamed answer (unknown length, or text/event-stream):
//     flushed after every write and its head at once from a timer, which is ReverseProxy's policy
//     (FlushInterval 0) and its race; its answer of known length is left to the server's buffering, as
//     ReverseProxy leaves it (flush.go).
//   - Discarded: body bytes the client's request cannot carry (HEAD, 204, 304) are read and dropped, so
//     the exchange still ends cleanly.
//   - Aborted: a Body read that fails (the app resetting, closing short of its length, stalling past its
//     read timeout: an *appconn.StallError in the chain) after the head is logged once, the head and the
//     bytes so far are flushed (unless the body is close-delimited, which would look complete), and the
//     handler panics with http.ErrAbortHandler: a truncated answer never looks complete.
//   - Client gone: a failed write, or a read failing while the request's context is done, is logged at
//     Info (status 499) and ends the relay without an answer.
//
// Request bodies of unknown length: a transport whose protocol frames the body by its declared length
// alone (CONTENT_LENGTH: FastCGI, uwsgi, SCGI) declares Options.Spool; Serve then reads such a body to
// its end first (internal/spool) and hands the transport a request of known length, whose Body is no
// longer the client's stream (Spooled reports it).
package relay

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/internal/appconn"
	"github.com/switchyard/switchyard/internal/hopbyhop"
	"github.com/switchyard/switchyard/internal/spool"
	"github.com/switchyard/switchyard/reqinfo"
)

// Transport is one app protocol's client side: it sends a request to the app and returns the app's
// answer, the head read and the Body streaming the rest from the app.
//
// It is http.RoundTripper's shape plus the client's writer w, which a transport uses only for the
// client's side of the request body while the answer may already go out (full duplex, waking a pending
// read of the client's connection, clientbody.End once the exchange is over), never to write the answer.
// A transport answers a failure before the head itself (failure.Answer) and returns nil: the order of that
// answer and of ending a request body still being read matters (a woken read of the client's connection
// cancels the request's context, after which no answer is sent), and only the transport knows where its
// body writer stands. It likewise returns nil when it served the request without an app (a static file).
type Transport interface {
	RoundTrip(w http.ResponseWriter, r *http.Request) *http.Response
}

// WaitNotifier is implemented by a Body that knows when its next Read would wait for the app (its buffer
// empty, a read of the connection next). It calls f, in the reading goroutine, before each such read;
// Write flushes there. A Body without it is flushed after every write.
type WaitNotifier interface {
	NotifyBeforeWait(f func())
}

// Options describe one app to the relay. The zero value spools nothing and logs on slog.Default().
type Options struct {
	// Name begins the relay's log messages ("uwsgi response aborted: ..."); "" means "upstream".
	Name string
	// App and Upstream name the app in every log line.
	App, Upstream string
	// Logger receives the abort and client-gone lines and, through failure.Answer, a failed spool.
	Logger *slog.Logger
	// Spool, when not nil, declares that the transport needs every request body's length: a body of
	// unknown length is spooled (these options) before RoundTrip.
	Spool *spool.Options
	// CGIHead declares that the transport's heads come from a CGI response (FastCGI, uwsgi, SCGI), whose
	// Content-Length field is the script's word, not the framing: the relay drops it and sets
	// Content-Length from the Response's ContentLength, omitted when unknown (-1) and for 204 and 304.
	// Without it (an HTTP app: the field is the framing h1 or net/http already read by) the fields are
	// copied as the app sent them, as httputil.ReverseProxy does.
	CGIHead bool
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

func (o *Options) name() string {
	if o.Name == "" {
		return "upstream"
	}
	return o.Name
}

// Serve spools r's body when the transport declared it, runs t and writes its answer to w (Write).
func Serve(w http.ResponseWriter, r *http.Request, t Transport, o *Options) {
	if o.Spool != nil && r.Body != nil && r.Body != http.NoBody && r.ContentLength < 0 {
		serveSpooled(w, r, t, o)
		return
	}
	if res := t.RoundTrip(w, r); res != nil {
		Write(w, r, res, o)
	}
}

// serveSpooled is Serve for a body that must be spooled first: apart, so that Serve's common path
// carries no defer.
func serveSpooled(w http.ResponseWriter, r *http.Request, t Transport, o *Options) {
	sp, err := spool.Read(r.Context(), r.Body, *o.Spool)
	if err != nil {
		if !errors.Is(err, spool.ErrStorage) {
			err = failure.ClientBody(err)
		}
		failure.Answer(w, r, o.logger(), o.App, o.Upstream, fmt.Errorf("%s spooling the request body: %w", o.name(), err))
		return
	}
	defer sp.Close()
	req := r.WithContext(r.Context())
	req.ContentLength = sp.Len()
	req.Body = spooled{sp}
	if res := t.RoundTrip(w, req); res != nil {
		Write(w, r, res, o)
	}
}

// spooled marks a request body Serve spooled; Close is left to Serve.
type spooled struct{ *spool.Body }

func (spooled) Close() error { return nil }

// Spooled reports whether r's body was spooled by Serve: a copy of known length, not the client's stream.
func Spooled(r *http.Request) bool {
	_, ok := r.Body.(spooled)
	return ok
}

// buffers recycles the body copy buffers.
var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Write writes res to w as the package comment says, and closes res.Body. r is the client's request.
func Write(w http.ResponseWriter, r *http.Request, res *http.Response, o *Options) {
	hdr := w.Header()
	hopbyhop.CopyResponse(hdr, res.Header)
	if o.CGIHead {
		delete(hdr, "Content-Length")
		if res.ContentLength >= 0 && res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusNotModified {
			hdr["Content-Length"] = []string{strconv.FormatInt(res.ContentLength, 10)}
		}
	}
	announced := announceTrailers(hdr, res.Trailer)
	w.WriteHeader(res.StatusCode)

	// dst is where the body goes: w itself (flushed by the server's buffering: an answer of known length
	// from a Body that cannot say when it would wait), or a writer that flushes (flush.go).
	var dst io.Writer = w
	var f *waitFlusher
	var each *eachWriteFlusher
	if wn, ok := res.Body.(WaitNotifier); ok {
		f = &waitFlusher{w: w}
		wn.NotifyBeforeWait(f.flush)
		if res.ContentLength < 0 && noBody(r) {
			// A body of unknown length: the head goes out at once, chunked, as httputil.ReverseProxy sends
			// it, not held until the body's end gives it a length. Not while the client's body may still be
			// read: outside full duplex, net/http's server would block the flush until that pending read
			// returns.
			f.dirty = true
			f.flush()
		}
		dst = f
	} else if res.ContentLength < 0 || eventStream(res.Header["Content-Type"]) {
		each = newEachWriteFlusher(w)
		defer each.stop() // also when a Read panics: no timer flush after the handler
		dst = each
	}
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	buf := *bp
	discard := false
	var readErr, clientErr error
	for {
		n, err := res.Body.Read(buf)
		if f != nil && f.err != nil {
			clientErr = f.err // the flush before this read failed: the client is gone
			break
		}
		if n > 0 && !discard {
			if m, werr := dst.Write(buf[:n]); werr != nil || m != n {
				if errors.Is(werr, http.ErrBodyNotAllowed) {
					discard = true // HEAD, 204, 304: read on, so the exchange ends cleanly
				} else {
					clientErr = cmp.Or(werr, io.ErrShortWrite)
					break
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
	}
	if each != nil {
		each.stop() // before the abort's and the trailers' flushes, which would race with the timer's
	}
	ctx := r.Context()
	if clientErr == nil && readErr != nil && ctx.Err() != nil {
		clientErr = ctx.Err()
	}
	if clientErr != nil {
		res.Body.Close()
		o.LogUndelivered(ctx, r.Method, r.URL.Path, 499, true, clientErr)
		return
	}
	if readErr != nil {
		o.LogUndelivered(ctx, r.Method, r.URL.Path, res.StatusCode, false, readErr)
		res.Body.Close()
		Abort(w, r)
	}
	res.Body.Close() // fills res.Trailer
	setTrailers(w, res.Trailer, announced)
}

// noBody reports whether r has no body to read.
func noBody(r *http.Request) bool {
	return r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
}

// LogUndelivered logs an answer that failed after its head: the client went away (clientGone; status
// 499) or the app failed or stalled mid-body (status: the answer's).
// The line names the instance the request's reqinfo says answered, for an app of several.
func (o *Options) LogUndelivered(ctx context.Context, method, path string, status int, clientGone bool, err error) {
	o.LogUndeliveredBy(ctx, reqinfo.From(ctx).Snapshot().Upstream, method, path, status, clientGone, err)
}

// LogUndeliveredBy is LogUndelivered naming upstream, the instance that answered ("": the app's one).
func (o *Options) LogUndeliveredBy(ctx context.Context, upstream, method, path string, status int, clientGone bool, err error) {
	msg, level := o.name()+" response not delivered: client went away", slog.LevelInfo
	if !clientGone {
		msg, level = o.name()+" response aborted: app failed mid-body", slog.LevelWarn
		if stall := (*appconn.StallError)(nil); errors.As(err, &stall) {
			msg = o.name() + " response aborted: app stalled mid-body"
		}
	}
	if upstream == "" {
		upstream = o.Upstream
	}
	o.logger().LogAttrs(ctx, level, msg,
		slog.String("app", o.App), slog.String("upstream", upstream), slog.Int("status", status),
		slog.String("method", method), slog.String("path", path), slog.String("cause", err.Error()))
}

// Abort ends a response whose body failed after the head: the head and the bytes written so far are
// flushed, so the client sees a started answer whose body is cut (short of its Content-Length, or a
// chunked stream without its last chunk), never a clean end and never only a closed connection; then it
// panics with http.ErrAbortHandler, which makes the server close the connection. A close-delimited body
// (an HTTP/1.0 client, no Content-Length) would look complete once cut, so it is not flushed.
func Abort(w http.ResponseWriter, r *http.Request) {
	FlushForAbort(w, r)
	panic(http.ErrAbortHandler)
}

// FlushForAbort flushes w before an abort unless its body is close-delimited (see Abort).
func FlushForAbort(w http.ResponseWriter, r *http.Request) {
	if r.ProtoAtLeast(1, 1) || w.Header().Get("Content-Length") != "" {
		_ = http.NewResponseController(w).Flush()
	}
}

// announceTrailers adds a Trailer field to dst naming trailer's keys (what the app announced), and
// returns how many it named.
func announceTrailers(dst http.Header, trailer http.Header) int {
	n := len(trailer)
	if n == 0 {
		return 0
	}
	keys := make([]string, 0, n)
	for k := range trailer {
		keys = append(keys, k)
	}
	dst.Add("Trailer", strings.Join(keys, ", "))
	return n
}

// setTrailers sets the trailers the app sent once its body ended: under their names when trailer holds
// just the announced keys, else every one with http.TrailerPrefix (the server sends those whether
// announced or not). A non-empty trailer forces chunking first (a flush), so the trailers can follow.
func setTrailers(w http.ResponseWriter, trailer http.Header, announced int) {
	if len(trailer) == 0 {
		return
	}
	_ = http.NewResponseController(w).Flush()
	dst := w.Header()
	if len(trailer) == announced {
		for k, vv := range trailer {
			for _, v := range vv {
				dst.Add(k, v)
			}
		}
		return
	}
	for k, vv := range trailer {
		k = http.TrailerPrefix + k
		for _, v := range vv {
			dst.Add(k, v)
		}
	}
}

// Forward1xx writes an informational answer (103 Early Hints, 100 Continue) to w as received, as
// httputil.ReverseProxy forwards them: its fields set on w's header for the 1xx alone, then cleared.
func Forward1xx(w http.ResponseWriter, code int, fields map[string][]string) {
	h := w.Header()
	for k, vv := range fields {
		for _, v := range vv {
			h.Add(k, v)
		}
	}
	w.WriteHeader(code)
	clear(h)
}
