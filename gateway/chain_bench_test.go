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
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello")
	})
	cfg, err := config.Load(map[string]string{
		"GATEWAY_PRIMARY": "inproc://app",
		"GATEWAY_ROUTES":  "/api/=inproc://app",
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	m, err := metrics.New(prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, map[string]http.Handler{"app": app}), Logger: logger, Observe: m.Middleware})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
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
