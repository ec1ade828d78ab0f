package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/metrics"
)

// BenchmarkHandlerChain measures the whole chain Build puts in front of an application (request id, access
// log, client deadlines, metrics as cmd/gateway wires them, the migration recorder, the front door and the
// route table) for a small GET answered by an in-process app, so the gateway's own cost per request shows.
func BenchmarkHandlerChain(b *testing.B) {
	g := benchGateway(b, slog.New(slog.DiscardHandler))
	req := httptest.NewRequest(http.MethodGet, "/api/users/7", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		g.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkHandlerChainLogged is BenchmarkHandlerChain with the access log on (text lines to io.Discard),
// as a gateway runs at the default level.
func BenchmarkHandlerChainLogged(b *testing.B) {
	g := benchGateway(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	req := httptest.NewRequest(http.MethodGet, "/api/users/7", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		g.Handler.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// benchGateway builds the gateway of the chain benchmarks: an in-process app as primary and on /api/,
// with metrics as cmd/gateway wires them.
func benchGateway(tb testing.TB, logger *slog.Logger) *Gateway {
	tb.Helper()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	})
	cfg, err := config.Load(map[string]string{
		"GATEWAY_PRIMARY": "inproc://app",
		"GATEWAY_ROUTES":  "/api/=inproc://app",
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := metrics.New(prometheus.NewRegistry(), nil)
	if err != nil {
		tb.Fatal(err)
	}
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, map[string]http.Handler{"app": app}), Logger: logger, Observe: m.Middleware})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

// TestHandlerChainAllocationsDoNotGrow checks the steady state of the whole chain: the same allocations
// per request over 100 and over 10000 requests, so nothing the gateway does keeps memory per request.
func TestHandlerChainAllocationsDoNotGrow(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need the full runs, without the race detector (it empties sync.Pools at random)")
	}
	g := benchGateway(t, slog.New(slog.DiscardHandler))
	for _, path := range []string{"/api/users/7", "/about"} {
		t.Run(path, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			f := func() {
				w := httptest.NewRecorder()
				g.Handler.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					t.Fatalf("status %d", w.Code)
				}
			}
			short, long := testing.AllocsPerRun(100, f), testing.AllocsPerRun(10000, f)
			if short != long {
				t.Fatalf("allocations per request = %v (100 runs), %v (10000 runs): they grow", short, long)
			}
			t.Logf("%s: %v allocations per request (the test's recorder included)", path, long)
		})
	}
}
