package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/reqinfo"
)

func TestRetainDropsTheSeriesOfRemovedRoutesAndApps(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused := refusedErr(t)
	h := front(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := reqinfo.From(r.Context())
		switch r.URL.Path {
		case "/shop/":
			in.SetRoute("/shop/")
			in.Tried("new-shop")
			in.Failed("new-shop", "127.0.0.1:1", refused)
			in.Tried("django")
		case "/api/":
			in.SetRoute("/api/")
			in.Tried("api")
		default:
			in.SetRoute("*")
			in.Tried("django")
		}
	}))
	for _, p := range []string{"/shop/", "/api/", "/"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	count := func(name string, labels map[string]string) float64 { return value(t, reg, name, labels) }
	if count("switchyard_requests_total", map[string]string{"app": "api"}) != 1 || count("switchyard_upstream_errors_total", map[string]string{"app": "new-shop"}) != 1 {
		t.Fatal("the requests were not counted")
	}

	// The reload removed the /api/ route and the new-shop app; django stays on "*" and on /shop/.
	m.Retain([]string{"*", "/shop/"}, []string{"django"})
	for _, tc := range []struct {
		metric string
		labels map[string]string
		want   float64
	}{
		{"switchyard_requests_total", map[string]string{"route": "/api/"}, -1},
		{"switchyard_request_duration_seconds", map[string]string{"route": "/api/"}, -1},
		{"switchyard_upstream_errors_total", map[string]string{"app": "new-shop"}, -1},
		{"switchyard_requests_total", map[string]string{"route": "/shop/", "app": "django"}, 1},
		{"switchyard_cascade_pass_throughs_total", map[string]string{"route": "/shop/", "app": "django"}, 1},
		{"switchyard_requests_total", map[string]string{"route": "*", "app": "django"}, 1},
	} {
		if got := count(tc.metric, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v; want %v (-1: no series)", tc.metric, tc.labels, got, tc.want)
		}
	}

	// A route that comes back starts a new series.
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/api/", nil))
	if got := count("switchyard_requests_total", map[string]string{"route": "/api/"}); got != 1 {
		t.Fatalf("requests of /api/ after it came back = %v; want 1", got)
	}
}
