package middleware

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/reqinfo"
)

// AccessLog returns middleware that attaches a reqinfo record to each request, with the request's one
// recording ResponseWriter (reqinfo.Info.RecordResponse: middleware inside read the answer's status and
// size from the record rather than wrapping the writer again), and, when the request is done, logs one
// line through logger: method, path, status, bytes, duration_ms (milliseconds as a float, so a JSON
// consumer never has to guess the unit of a bare number), client address, request id,
// and what reqinfo learned (route, app, the cascade path). A request whose client went away before an
// answer is logged with status 499, and gets no answer at all: after the line, the handler panics with
// http.ErrAbortHandler, so the server closes the connection (or resets the stream) instead of sending the
// empty 200 it would make of an answer nobody wrote, which a client that only half-closed its connection
// would read as the request's answer. A panic passing through (an aborted response) is logged with status
// 0 and aborted=true, and is re-raised so the server tears the connection down.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			info := reqinfo.From(r.Context())
			if info == nil { // a record attached already (reqinfo.AttachAt) keeps its start
				r, info = reqinfo.Attach(r)
			}
			start := info.Start()
			// The request's one recording writer: the middleware inside read the answer from info.
			w = info.RecordResponse(w)
			aborted := true
			defer func() {
				ctx := r.Context()
				if !aborted && ctx.Err() != nil {
					if resp, _ := info.Response(); resp.Status == 0 {
						// Logged (below) as 499, then no answer (see above).
						defer panic(http.ErrAbortHandler)
					}
				}
				if !AccessLogEnabled(ctx, logger) {
					return // the line would be dropped: don't build it (a panic passing through goes on)
				}
				end := time.Now()
				resp, _ := info.Response()
				status := resp.Status
				if status == 0 && !aborted {
					if ctx.Err() != nil {
						status = failure.StatusClientClosedRequest
					} else {
						status = http.StatusOK
					}
				}
				s := info.Snapshot()
				l := AccessLine{
					Method: r.Method, Path: r.URL.Path, Host: r.Host,
					Status: status, Bytes: resp.Bytes,
					Start: start, End: end,
					Client: r.RemoteAddr, RequestID: first(r.Header[RequestIDHeader]),
					TraceParent: first(r.Header["Traceparent"]),
					Route:       s.Route, App: s.App,
					ProtoMajor: r.ProtoMajor, Proto: r.Proto,
					Tried: s.Tried, Upstream: s.Upstream, AppTime: s.AppTime,
					Aborted: aborted,
				}
				WriteAccessLine(ctx, logger, &l)
			}()
			next.ServeHTTP(w, r)
			aborted = false
		})
	}
}

// AccessLine is the content of one access-log line: what AccessLog writes for a request, for a caller
// that serves requests without the middleware (and without an *http.Request) and must log them alike.
type AccessLine struct {
	Method, Path, Host string
	// Status is the final status: AccessLog has already made an unanswered request 200, or 499 when its
	// client went away; an aborted response keeps what was sent (0 when nothing was).
	Status     int
	Bytes      int64     // body bytes written to the client
	Start, End time.Time // duration_ms is End-Start; End is the record's time
	Client     string    // the client address (http.Request.RemoteAddr)
	RequestID  string    // the request's X-Request-Id value ("" none)
	// TraceParent is the raw traceparent field value ("" none): the line carries its trace id, or "" when
	// the value is not a valid one.
	TraceParent string
	Route, App  string
	ProtoMajor  int    // 1 writes no proto attribute; any other value writes Proto
	Proto       string // "HTTP/2.0"
	Tried       []string
	Upstream    string
	AppTime     time.Duration // written when Tried is not empty
	Aborted     bool          // a panic passed through: written as aborted=true
}

// AccessLogEnabled reports whether logger would write an access line: the check AccessLog makes before
// building one, so that a caller skips the work when the line would be dropped.
func AccessLogEnabled(ctx context.Context, logger *slog.Logger) bool {
	return logger.Enabled(ctx, slog.LevelInfo)
}

// WriteAccessLine writes l through logger as AccessLog does: the same message, level, attributes in the
// same order, and l.End as the record's time. It does not check AccessLogEnabled (the handler's own Handle
// is called regardless); l is not retained.
func WriteAccessLine(ctx context.Context, logger *slog.Logger, l *AccessLine) {
	var buf [16]slog.Attr // room for every attribute: no slice growth per line
	attrs := append(buf[:0],
		slog.String("method", l.Method),
		slog.String("path", l.Path),
		slog.String("host", l.Host),
		slog.Int("status", l.Status),
		slog.Int64("bytes", l.Bytes),
		millis("duration_ms", l.End.Sub(l.Start)),
		slog.String("client", l.Client),
		slog.String("request_id", l.RequestID),
		slog.String("trace_id", traceID(l.TraceParent)),
		slog.String("route", l.Route),
		slog.String("app", l.App),
	)
	if l.ProtoMajor != 1 { // HTTP/2 and HTTP/3 say so; HTTP/1.x lines stay as they were
		attrs = append(attrs, slog.String("proto", l.Proto))
	}
	if len(l.Tried) > 1 {
		attrs = append(attrs, slog.String("cascade", strings.Join(l.Tried, " > ")))
	}
	if l.Upstream != "" {
		attrs = append(attrs, slog.String("upstream", l.Upstream))
	}
	if len(l.Tried) > 0 {
		attrs = append(attrs, millis("app_duration_ms", l.AppTime))
	}
	if l.Aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	// The record is made here rather than by LogAttrs, which would walk the stack for the caller's
	// position (a source position, when a handler shows one, would only ever name this line).
	rec := slog.NewRecord(l.End, slog.LevelInfo, "request", 0)
	rec.AddAttrs(attrs...)
	_ = logger.Handler().Handle(ctx, rec)
}

// first returns a header's first value, or "" (Header.Get without canonicalising a name given canonical).
func first(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// millis is a duration in milliseconds, to the microsecond (0.412): the unit is in the key, and the value
// reads the same in the text and the JSON log (slog's Duration would be "412µs" in one and 412000
// nanoseconds in the other).
func millis(key string, d time.Duration) slog.Attr {
	return slog.Float64(key, math.Round(float64(d)/1e3)/1e3)
}

// traceID returns the trace id of a W3C traceparent ("00-<32 hex>-<16 hex>-<2 hex>"), or "" when the value
// is not one. The tracing middleware, when on, has replaced the client's header with the gateway's span by
// the time the access line is written, so the id is the one the apps saw.
func traceID(tp string) string {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return ""
	}
	id := tp[3:35]
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	if id == "00000000000000000000000000000000" {
		return ""
	}
	return id
}
