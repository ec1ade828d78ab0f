package metrics

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestRequestsCountByProtocol(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := front(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, major := range []int{1, 1, 2, 3, 3, 3, 9} {
		r := httptest.NewRequest("GET", "/", nil)
		r.ProtoMajor = major
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	for _, tc := range []struct {
		protocol string
		want     float64
	}{{"http1", 2}, {"http2", 1}, {"http3", 3}, {"other", 1}} {
		if got := value(t, reg, "switchyard_requests_total", map[string]string{"protocol": tc.protocol}); got != tc.want {
			t.Errorf("requests with protocol=%s: %v, want %v", tc.protocol, got, tc.want)
		}
	}
}
