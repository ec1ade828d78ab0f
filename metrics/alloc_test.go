package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/reqinfo"
)

type nopWriter struct{ h http.Header }

func (w nopWriter) Header() http.Header         { return w.h }
func (w nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w nopWriter) WriteHeader(int)             {}

// TestMiddlewareAllocatesNothingOnceASeriesExists checks that, with the route's instruments cached, the
// middleware adds no allocation to a request: the 2 counted are the reqinfo record front attaches.
func TestMiddlewareAllocatesNothingOnceASeriesExists(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need the full runs")
	}
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := front(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := reqinfo.From(r.Context())
		in.SetRoute("/api/")
		in.Tried("http://new")
		in.Tried("http://old")
		w.WriteHeader(http.StatusNoContent)
	}))
	r, w := httptest.NewRequest(http.MethodGet, "/api/x", nil), nopWriter{http.Header{}}
	f := func() { h.ServeHTTP(w, r) }
	short, long := testing.AllocsPerRun(100, f), testing.AllocsPerRun(10000, f)
	if short != 2 || long != 2 {
		t.Fatalf("allocations per request = %v (100 runs), %v (10000 runs), want 2 (the record)", short, long)
	}
	want := map[string]string{"route": "/api/", "app": "http://old", "method": "GET", "status_class": "2xx"}
	if got := value(t, reg, "switchyard_requests_total", want); got != 10102 {
		t.Fatalf("switchyard_requests_total%v = %v, want 10102 (every request counted once, AllocsPerRun warming up once per call)", want, got)
	}
	if got := value(t, reg, "switchyard_cascade_pass_throughs_total", map[string]string{"route": "/api/", "app": "http://old"}); got != 10102 {
		t.Fatalf("pass-throughs = %v, want 10102", got)
	}
}
