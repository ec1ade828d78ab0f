package migration

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/middleware"
)

// TestTheMiddlewareReadsTheAnswerWithOneWrapper checks that behind AccessLog the Recorder reads the access
// log's recording writer instead of adding its own, and that on its own (library use) it wraps once and
// still records the status: errors are answers of 5xx, or none at all (an aborted one).
func TestTheMiddlewareReadsTheAnswerWithOneWrapper(t *testing.T) {
	fronts := []struct {
		name string
		wrap func(h http.Handler) http.Handler
	}{
		{"inside AccessLog", middleware.AccessLog(slog.New(slog.DiscardHandler))},
		{"on its own", func(h http.Handler) http.Handler { return h }},
	}
	answers := []struct {
		name    string
		errors  uint64
		handler http.HandlerFunc
	}{
		{"a body", 0, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }},
		{"nothing written", 0, func(w http.ResponseWriter, r *http.Request) {}},
		{"a 503", 1, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"an aborted answer", 1, func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) }},
	}
	for _, f := range fronts {
		for _, a := range answers {
			t.Run(f.name+", "+a.name, func(t *testing.T) {
				rec := NewRecorder(RecorderOptions{})
				layers, done := make(chan int, 1), make(chan struct{})
				h := f.wrap(rec.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					n := 0
					for u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok; u, ok = u.Unwrap().(interface{ Unwrap() http.ResponseWriter }) {
						n++
					}
					layers <- n
					a.handler(w, r)
				})))
				srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					defer close(done)
					h.ServeHTTP(w, r)
				}))
				srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)
				srv.Start()
				defer srv.Close()
				if resp, err := http.Get(srv.URL + "/"); err == nil {
					resp.Body.Close()
				}
				<-done
				if n := <-layers; n != 1 {
					t.Errorf("the handler's writer has %d wrappers, want 1", n)
				}
				var got AppReport
				for _, rr := range rec.Report().Routes {
					for _, ar := range rr.Apps {
						got = ar
					}
				}
				if got.Requests != 1 || got.Errors != a.errors {
					t.Errorf("recorded %d requests, %d errors; want 1, %d", got.Requests, got.Errors, a.errors)
				}
			})
		}
	}
}
