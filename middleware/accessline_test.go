package middleware

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/reqinfo"
)

// recordTap hands every record to a JSON handler writing to out, and keeps the last one.
type recordTap struct {
	slog.Handler
	last slog.Record
}

func (h *recordTap) Handle(ctx context.Context, r slog.Record) error {
	h.last = r.Clone()
	return h.Handler.Handle(ctx, r)
}

// TestWriteAccessLineWritesWhatAccessLogWrites serves requests through AccessLog, then writes the
// AccessLine those requests make (built by hand from what each request was, with the start and end the
// middleware read) through WriteAccessLine: the record (time, level, message, every attribute in order)
// and the JSON bytes must be the same.
func TestWriteAccessLineWritesWhatAccessLogWrites(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		name  string
		req   func() *http.Request
		serve func(w http.ResponseWriter, r *http.Request, cancel func())
		want  AccessLine // Start and End are filled in from the request served
	}{{
		name: "a plain answer with request id and traceparent",
		req: func() *http.Request {
			r := httptest.NewRequest("GET", "http://example.test/x?q=1", nil)
			r.Header.Set(RequestIDHeader, "rid-1")
			r.Header.Set("Traceparent", tp)
			return r
		},
		serve: func(w http.ResponseWriter, r *http.Request, _ func()) {
			in := reqinfo.From(r.Context())
			in.SetRoute("/")
			in.Tried("http://a")
			in.SetUpstream("127.0.0.1:9")
			in.AddAppTime(1234 * time.Microsecond)
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte("hello"))
		},
		want: AccessLine{Method: "GET", Path: "/x", Host: "example.test", Status: 201, Bytes: 5,
			Client: "192.0.2.1:1234", RequestID: "rid-1", TraceParent: tp, Route: "/", App: "http://a",
			ProtoMajor: 1, Proto: "HTTP/1.1", Tried: []string{"http://a"}, Upstream: "127.0.0.1:9", AppTime: 1234 * time.Microsecond},
	}, {
		name: "an HTTP/2 cascade that wrote nothing is a 200",
		req: func() *http.Request {
			r := httptest.NewRequest("POST", "/form", nil)
			r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
			r.Header.Set("Traceparent", "not-a-traceparent")
			return r
		},
		serve: func(w http.ResponseWriter, r *http.Request, _ func()) {
			in := reqinfo.From(r.Context())
			in.SetRoute("*")
			in.Tried("http://new")
			in.Tried("http://legacy")
		},
		want: AccessLine{Method: "POST", Path: "/form", Host: "example.com", Status: 200,
			Client: "192.0.2.1:1234", TraceParent: "not-a-traceparent", Route: "*", App: "http://legacy",
			ProtoMajor: 2, Proto: "HTTP/2.0", Tried: []string{"http://new", "http://legacy"}},
	}, {
		name:  "a client gone before an answer is a 499",
		req:   func() *http.Request { return httptest.NewRequest("GET", "/gone", nil) },
		serve: func(w http.ResponseWriter, r *http.Request, cancel func()) { cancel() },
		want: AccessLine{Method: "GET", Path: "/gone", Host: "example.com", Status: 499,
			Client: "192.0.2.1:1234", ProtoMajor: 1, Proto: "HTTP/1.1"},
	}, {
		name: "an aborted response keeps its status and says aborted",
		req:  func() *http.Request { return httptest.NewRequest("GET", "/abort", nil) },
		serve: func(w http.ResponseWriter, r *http.Request, _ func()) {
			w.Write([]byte("partial"))
			panic(http.ErrAbortHandler)
		},
		want: AccessLine{Method: "GET", Path: "/abort", Host: "example.com", Status: 200, Bytes: 7,
			Client: "192.0.2.1:1234", ProtoMajor: 1, Proto: "HTTP/1.1", Aborted: true},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var got bytes.Buffer
			tap := &recordTap{Handler: slog.NewJSONHandler(&got, nil)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var start time.Time
			h := AccessLog(slog.New(tap))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				start = reqinfo.From(r.Context()).Start()
				tc.serve(w, r, cancel)
			}))
			func() {
				defer func() {
					if p := recover(); p != nil && p != http.ErrAbortHandler {
						panic(p)
					}
				}()
				h.ServeHTTP(httptest.NewRecorder(), tc.req().WithContext(ctx))
			}()
			fromMiddleware := tap.last

			l := tc.want
			l.Start, l.End = start, fromMiddleware.Time
			var want bytes.Buffer
			tap = &recordTap{Handler: slog.NewJSONHandler(&want, nil)}
			WriteAccessLine(ctx, slog.New(tap), &l)

			if got.String() != want.String() {
				t.Errorf("AccessLog wrote\n%s\nWriteAccessLine wrote\n%s", got.String(), want.String())
			}
			if !sameRecord(fromMiddleware, tap.last) {
				t.Errorf("records differ:\nAccessLog:       %v\nWriteAccessLine: %v", fromMiddleware, tap.last)
			}
		})
	}
}

// sameRecord reports whether a and b have the same time, level, message and attributes in order.
func sameRecord(a, b slog.Record) bool {
	if !a.Time.Equal(b.Time) || a.Level != b.Level || a.Message != b.Message || a.NumAttrs() != b.NumAttrs() {
		return false
	}
	var as, bs []slog.Attr
	a.Attrs(func(at slog.Attr) bool { as = append(as, at); return true })
	b.Attrs(func(at slog.Attr) bool { bs = append(bs, at); return true })
	for i := range as {
		if !as[i].Equal(bs[i]) {
			return false
		}
	}
	return true
}

func TestAccessLogEnabledFollowsTheHandlersLevel(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		level slog.Level
		want  bool
	}{{slog.LevelInfo, true}, {slog.LevelDebug, true}, {slog.LevelWarn, false}} {
		l := slog.New(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: tc.level}))
		if got := AccessLogEnabled(ctx, l); got != tc.want {
			t.Errorf("handler at %v: AccessLogEnabled = %v, want %v", tc.level, got, tc.want)
		}
	}
}
