package metrics

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/reqinfo"
)

// TestARefusedAppCountsOnceWhateverItsKind: every network kind answers a refused connection with 502,
// records the upstream it tried (the access log's upstream field) and exactly one failure in the request's
// record, and counts one refused upstream error.
func TestARefusedAppCountsOnceWhateverItsKind(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens there once closed
	ln.Close()
	sock := filepath.Join(t.TempDir(), "missing.sock")
	for _, app := range []string{
		"http://" + closed, "unix://" + sock,
		"uwsgi://" + closed, "uwsgi+unix://" + sock,
		"scgi://" + closed, "scgi+unix://" + sock,
		"fastcgi://" + closed, "fastcgi+unix://" + sock,
	} {
		t.Run(app, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := New(reg, nil)
			if err != nil {
				t.Fatal(err)
			}
			r := builtin.Registry(slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			tg, _, err := r.Parse(app)
			if err != nil {
				t.Fatal(err)
			}
			h, err := r.Build(tg)
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := h.(io.Closer); ok {
				defer c.Close()
			}
			var failures []reqinfo.Failure
			var upstream string
			inner := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				in := reqinfo.From(r.Context())
				in.SetRoute("*")
				in.Tried(app)
				h.ServeHTTP(w, r)
				failures, upstream = in.Snapshot().Failures, in.Snapshot().Upstream
			}))
			rec := httptest.NewRecorder()
			req, _ := reqinfo.Attach(httptest.NewRequest("GET", "/x", nil))
			inner.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadGateway {
				t.Fatalf("status %d, want 502", rec.Code)
			}
			if upstream == "" {
				t.Error("no upstream recorded for the access log")
			}
			if len(failures) != 1 {
				t.Fatalf("%d failures recorded, want 1: %v", len(failures), failures)
			}
			if got := value(t, reg, "switchyard_upstream_errors_total", map[string]string{"app": failures[0].App, "cause": CauseRefused}); got != 1 {
				t.Fatalf("switchyard_upstream_errors_total{cause=refused} = %v, want 1", got)
			}
		})
	}
}
