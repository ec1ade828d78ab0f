package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/metrics"
	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/migration"
	"github.com/switchyard/switchyard/router"
)

// layer is one of the gateway's per-request layers, as Build composes it.
type layer struct {
	name string
	wrap func(tb testing.TB, next http.Handler) http.Handler
}

// frontLayers are the layers Build puts around a route's app, outermost first, with cmd/gateway's Observe
// (the metrics middleware; tracing off) and the access log writing to logger. BenchmarkLayers adds them
// one at a time, so each one's cost is the difference between its sub-benchmark and the one before. Keep
// it in step with Build.
func frontLayers(logger *slog.Logger) []layer {
	return []layer{
		{"request-id", func(_ testing.TB, h http.Handler) http.Handler { return middleware.RequestID()(h) }},
		{"access-log", func(_ testing.TB, h http.Handler) http.Handler { return middleware.AccessLog(logger)(h) }},
		{"client-deadlines", func(_ testing.TB, h http.Handler) http.Handler {
			return middleware.ClientDeadlines(60 * time.Second)(h)
		}},
		{"metrics", func(tb testing.TB, h http.Handler) http.Handler {
			m, err := metrics.New(prometheus.NewRegistry(), nil)
			if err != nil {
				tb.Fatal(err)
			}
			return m.Middleware(h)
		}},
		{"migration-ledger", func(_ testing.TB, h http.Handler) http.Handler {
			rec := migration.NewRecorder(migration.RecorderOptions{})
			rec.AddRoute(migration.RouteMeta{Pattern: "/api/", Key: "app inproc://app"})
			return rec.Middleware(h)
		}},
		{"sanitize", func(_ testing.TB, h http.Handler) http.Handler {
			return router.Sanitize(router.SanitizeConfig{})(h)
		}},
		{"route-table", func(tb testing.TB, h http.Handler) http.Handler {
			p, err := router.ParsePattern("/api/")
			if err != nil {
				tb.Fatal(err)
			}
			t, err := router.NewTable([]router.Route{{Pattern: p, Handler: h}}, h)
			if err != nil {
				tb.Fatal(err)
			}
			return t
		}},
		{"route-claim", func(_ testing.TB, h http.Handler) http.Handler {
			// What Build makes of a route served by one app: the route's annotation and a one-app Cascade,
			// merged (routeHandler).
			app := []delegate.App{{Name: "app", Handler: h}}
			return routeHandler("/api/", &delegate.Cascade{Apps: app, Pass: delegate.StatusSet(404)}, app)
		}},
		{"app-timer", func(_ testing.TB, h http.Handler) http.Handler { return timed(h) }},
	}
}

// BenchmarkLayers serves a small GET through the first k of frontLayers, for k from 0 (the app alone) to
// all of them, with the access log off (its level disabled, as the chain benchmarks); "all-logged" is the
// whole stack with the access line written (text, to io.Discard), as at the default level. A layer's cost
// is its sub-benchmark's minus the one before. The writer takes write deadlines on a real TCP
// connection, and the request carries no X-Request-Id, so every request pays for a fresh one.
//
// Wall-clock times are noisy on a shared machine: count instructions instead (bench/layers.sh runs each
// sub-benchmark under callgrind) and allocations (-benchmem).
func BenchmarkLayers(b *testing.B) {
	off := frontLayers(slog.New(slog.DiscardHandler))
	for k := 0; k <= len(off); k++ {
		name := "00-app"
		if k > 0 {
			name = fmt.Sprintf("%02d-%s", k, off[k-1].name)
		}
		b.Run(name, func(b *testing.B) { benchStack(b, off[:k]) })
	}
	b.Run("all-logged", func(b *testing.B) { benchStack(b, frontLayers(slog.New(slog.NewTextHandler(io.Discard, nil)))) })
}

func benchStack(b *testing.B, layers []layer) {
	var h http.Handler = layerApp
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i].wrap(b, h)
	}
	r, w := layerRequest(), newConnWriter(b)
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		delete(r.Header, middleware.RequestIDHeader)
		h.ServeHTTP(w, r)
		if w.code != 0 && w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

// layerApp is the application behind the layers: a small answer, as the bench's backend gives.
var layerApp = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header()["Content-Type"] = []string{"text/plain"}
	_, _ = io.WriteString(w, "hello")
})

// connWriter is a ResponseWriter that keeps nothing but takes write deadlines on a real TCP connection,
// as net/http's does, so that the deadline updates cost what they cost on a served connection.
type connWriter struct {
	h    http.Header
	code int
	c    net.Conn
}

func (w *connWriter) Header() http.Header                { return w.h }
func (w *connWriter) Write(b []byte) (int, error)        { return len(b), nil }
func (w *connWriter) WriteHeader(code int)               { w.code = code }
func (w *connWriter) SetWriteDeadline(t time.Time) error { return w.c.SetWriteDeadline(t) }
func (w *connWriter) SetReadDeadline(t time.Time) error  { return w.c.SetReadDeadline(t) }
func (w *connWriter) reset()                             { clear(w.h); w.code = 0 }

func newConnWriter(tb testing.TB) *connWriter {
	return &connWriter{h: http.Header{}, c: loopbackConn(tb)}
}

// loopbackConn returns one end of a loopback TCP connection, closed with tb.
func loopbackConn(tb testing.TB) net.Conn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); s.Close() })
	return s
}

// layerRequest is a small GET as a browser sends it, without an X-Request-Id (the gateway makes one).
func layerRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/users/7", nil)
	r.Host = "localhost:8080"
	for k, v := range map[string]string{
		"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"Accept-Language": "en-US,en;q=0.5",
		"Accept-Encoding": "gzip, deflate, br",
		"Cookie":          "session=0123456789abcdef",
	} {
		r.Header.Set(k, v)
	}
	return r
}

// TestLayersAllocations holds the allocations of the front layers per request (BenchmarkLayers's whole
// stack, a fresh request id each time, the access log off): the record with its context and the request
// copy that attaches it (2), the request id with its header values (1), the write deadline tracker (1),
// and the app's own 2. The migration ledger, metrics, the front door, the route table and the route's
// claim allocate nothing once a path's template has been seen.
func TestLayersAllocations(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need the full runs, without the race detector (it empties sync.Pools at random)")
	}
	layers := frontLayers(slog.New(slog.DiscardHandler))
	var h http.Handler = layerApp
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i].wrap(t, h)
	}
	r, w := layerRequest(), newConnWriter(t)
	serve := func() {
		w.reset()
		delete(r.Header, middleware.RequestIDHeader)
		h.ServeHTTP(w, r)
	}
	serve() // the ledger's first request on the path makes its row
	const want = 6
	got := testing.AllocsPerRun(1000, serve)
	if got > want {
		t.Fatalf("%v allocations per request through the front layers, want at most %d", got, want)
	}
	t.Logf("%v allocations per request (the app's 2 included)", got)
	if w.code != 0 && w.code != http.StatusOK || w.h.Get(middleware.RequestIDHeader) == "" {
		t.Fatalf("answer %d without a request id", w.code)
	}
}
