package middleware

import (
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
// answer is logged with status 499; a panic passing through (an aborted response) with status 0 and
// aborted=true, and is re-raised so the server tears the connection down.
func AccessLog(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, info := reqinfo.Attach(r)
			start := info.Start()
			// The request's one recording writer: the middleware inside read the answer from info.
			w = info.RecordResponse(w)
			aborted := true
			defer func() {
				if !logger.Enabled(r.Context(), slog.LevelInfo) {
					return // the line would be dropped: don't build it (a panic passing through goes on)
				}
				end := time.Now()
				resp, _ := info.Response()
				status := resp.Status
				if status == 0 && !aborted {
					if r.Context().Err() != nil {
						status = failure.StatusClientClosedRequest
					} else {
						status = http.StatusOK
					}
				}
				s := info.Snapshot()
				var buf [16]slog.Attr // room for every attribute: no slice growth per line
				attrs := append(buf[:0],
					slog.String("method", r.Method),
					slog.String("path", r.URL.Path),
					slog.String("host", r.Host),
					slog.Int("status", status),
					slog.Int64("bytes", resp.Bytes),
					millis("duration_ms", end.Sub(start)),
					slog.String("client", r.RemoteAddr),
					slog.String("request_id", first(r.Header[RequestIDHeader])),
					slog.String("trace_id", traceID(first(r.Header["Traceparent"]))),
					slog.String("route", s.Route),
					slog.String("app", s.App),
				)
				if r.ProtoMajor != 1 { // HTTP/2 and HTTP/3 say so; HTTP/1.x lines stay as they were
					attrs = append(attrs, slog.String("proto", r.Proto))
				}
				if len(s.Tried) > 1 {
					attrs = append(attrs, slog.String("cascade", strings.Join(s.Tried, " > ")))
				}
				if s.Upstream != "" {
					attrs = append(attrs, slog.String("upstream", s.Upstream))
				}
				if len(s.Tried) > 0 {
					attrs = append(attrs, millis("app_duration_ms", s.AppTime))
				}
				if aborted {
					attrs = append(attrs, slog.Bool("aborted", true))
				}
				// The record is made here rather than by LogAttrs, which would walk the stack for the caller's
				// position (a source position, when a handler shows one, would only ever name this line).
				rec := slog.NewRecord(end, slog.LevelInfo, "request", 0)
				rec.AddAttrs(attrs...)
				_ = logger.Handler().Handle(r.Context(), rec)
			}()
			next.ServeHTTP(w, r)
			aborted = false
		})
	}
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
