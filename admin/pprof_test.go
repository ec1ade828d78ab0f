package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/gateway"
)

func TestPprofIsServedOnlyWhenTurnedOn(t *testing.T) {
	g := &gateway.Gateway{}
	current := func() *gateway.Gateway { return g }
	tests := []struct {
		name   string
		opts   Options
		path   string
		status int
		want   string // substring of the body
	}{
		{"the profile index is served when pprof is on", Options{Pprof: true}, "/debug/pprof/", 200, "heap"},
		{"a named profile is served when pprof is on", Options{Pprof: true}, "/debug/pprof/allocs?debug=1", 200, "heap profile"},
		{"the command line is served when pprof is on", Options{Pprof: true}, "/debug/pprof/cmdline", 200, ""},
		{"symbol lookup is served when pprof is on", Options{Pprof: true}, "/debug/pprof/symbol", 200, "num_symbols"},
		{"the profile index is 404 when pprof is off", Options{}, "/debug/pprof/", 404, ""},
		{"a named profile is 404 when pprof is off", Options{}, "/debug/pprof/heap", 404, ""},
		{"the other admin endpoints stay when pprof is on", Options{Pprof: true}, "/healthz", 200, "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(HandlerWith(current, nil, tt.opts))
			defer srv.Close()
			resp, err := srv.Client().Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Fatalf("GET %s = %d %.200q, want %d containing %q", tt.path, resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
}

func TestHandlerServesNoProfiles(t *testing.T) {
	h := Handler(func() *gateway.Gateway { return &gateway.Gateway{} }, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ = %d, want 404 (pprof is off unless asked for)", rec.Code)
	}
}
