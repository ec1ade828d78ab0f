package httpproxy

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
)

// TestIdleTimeoutClosesIdleAppConnections checks that the gateway, not the app, ends an idle keep-alive
// connection once idle_timeout passes, on the fast path and through net/http's Transport alike.
func TestIdleTimeoutClosesIdleAppConnections(t *testing.T) {
	for _, fast := range []string{"true", "false"} {
		t.Run("fast_path="+fast, func(t *testing.T) {
			closed := make(chan struct{}, 4)
			app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("ok"))
			}))
			app.Config.IdleTimeout = time.Hour // the app never closes first
			app.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateClosed {
					closed <- struct{}{}
				}
			}
			app.Start()
			t.Cleanup(app.Close)
			_, gw, _ := adaptertest.Serve(t, Kind(), app.URL+"?idle_timeout=50ms&fast_path="+fast, "")
			resp, err := http.Get(gw.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("the idle app connection was still open 10 s after a 50ms idle_timeout")
			}
		})
	}
}

func TestIdleTimeoutOption(t *testing.T) {
	for _, tt := range []struct{ name, query, wantErr string }{
		{name: "a positive duration is taken", query: "idle_timeout=2s"},
		{name: "zero is refused", query: "idle_timeout=0", wantErr: "idle_timeout"},
		{name: "a word is refused", query: "idle_timeout=soon", wantErr: "idle_timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
			reg.MustRegister(Kind())
			tg, _, err := reg.Parse("http://127.0.0.1:1/?" + tt.query)
			if err == nil {
				var h http.Handler
				if h, err = reg.Build(tg); err == nil {
					if c, ok := h.(interface{ Close() error }); ok {
						c.Close()
					}
				}
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("err %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err %v, want one naming %q", err, tt.wantErr)
			}
		})
	}
}

// TestMaxIdleConnsZeroKeepsNoConnection checks that max_idle_conns=0 (SECURITY.md's cure for the residual
// window) reuses no app connection on any path: net/http's Transport alone would keep two (its default
// for zero).
func TestMaxIdleConnsZeroKeepsNoConnection(t *testing.T) {
	for _, tt := range []struct {
		name, query string
		tls         bool
	}{
		{name: "fast path", query: "?max_idle_conns=0"},
		{name: "fast_path=false", query: "?max_idle_conns=0&fast_path=false"},
		{name: "https app", query: "?max_idle_conns=0&tls_insecure_skip_verify=true", tls: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var opened atomic.Int32
			app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte("ok"))
			}))
			app.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					opened.Add(1)
				}
			}
			if tt.tls {
				app.StartTLS()
			} else {
				app.Start()
			}
			t.Cleanup(app.Close)
			_, gw, _ := adaptertest.Serve(t, Kind(), app.URL+tt.query, "")
			for i := range 3 {
				resp, err := http.Get(gw.URL + "/")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
			}
			if n := opened.Load(); n != 3 {
				t.Fatalf("the app saw %d connections for 3 requests, want 3", n)
			}
		})
	}
}
