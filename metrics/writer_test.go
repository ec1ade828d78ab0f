package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/middleware"
)

// wrappers counts the ResponseWriter layers above the server's own writer.
func wrappers(w http.ResponseWriter) int {
	n := 0
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return n
		}
		w, n = u.Unwrap(), n+1
	}
}

// TestTheWriterIsWrappedOnceWhereverTheMiddlewareRuns checks that behind AccessLog the middleware reads
// the access log's recording writer instead of adding its own, and that it still counts the right status
// class when it runs with a bare reqinfo record or none at all (library use).
func TestTheWriterIsWrappedOnceWhereverTheMiddlewareRuns(t *testing.T) {
	fronts := []struct {
		name string
		wrap func(m *Metrics, h http.Handler) http.Handler
	}{
		{"inside AccessLog", func(m *Metrics, h http.Handler) http.Handler {
			return middleware.AccessLog(slog.New(slog.DiscardHandler))(m.Middleware(h))
		}},
		{"behind a bare reqinfo record", front},
		{"with no reqinfo record", func(m *Metrics, h http.Handler) http.Handler { return m.Middleware(h) }},
	}
	answers := []struct {
		name, class string
		handler     http.HandlerFunc
	}{
		{"an explicit status", "4xx", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNotFound) }},
		{"a body without a status", "2xx", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }},
		{"nothing written", "2xx", func(w http.ResponseWriter, r *http.Request) {}},
		{"a hijacked connection", "1xx", func(w http.ResponseWriter, r *http.Request) {
			c, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				c.Close()
			}
		}},
	}
	for _, f := range fronts {
		for _, a := range answers {
			t.Run(f.name+", "+a.name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				m, err := New(reg, nil)
				if err != nil {
					t.Fatal(err)
				}
				layers, done := make(chan int, 1), make(chan struct{})
				h := f.wrap(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					layers <- wrappers(w)
					a.handler(w, r)
				}))
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer close(done) // the server does not wait for handlers of hijacked connections
					h.ServeHTTP(w, r)
				}))
				defer srv.Close()
				if resp, err := http.Get(srv.URL + "/"); err == nil {
					resp.Body.Close()
				}
				if n := <-layers; n != 1 {
					t.Errorf("the handler's writer has %d wrappers, want 1", n)
				}
				<-done
				if got := value(t, reg, "switchyard_requests_total", map[string]string{"status_class": a.class}); got != 1 {
					t.Errorf("requests with status class %s = %v, want 1", a.class, got)
				}
			})
		}
	}
}
