package upstream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
)

func TestParseHealthConfigTakesOnlyTheHealthOptions(t *testing.T) {
	o, err := adapters.ParseOptions("health_path=/h&health_host=a.example&lb=p2c&retries=3")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseHealthConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Active() || c.HealthPath != "/h" || c.HealthHost != "a.example" || c.MaxFails != 0 || c.Retries != 0 {
		t.Fatalf("config %+v", c)
	}
	if got := o.Unused(); len(got) != 2 || got[0] != "lb" || got[1] != "retries" {
		t.Fatalf("left for the kind to refuse: %v, want [lb retries]", got)
	}
	if c, err := ParseHealthConfig(&adapters.Options{}); err != nil || c.Active() {
		t.Fatalf("no options: %+v %v, want no checks", c, err)
	}
}

// waitHealth polls cond with a bounded deadline: checks run on a 20ms timer and there is no signal.
func waitHealth(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestGuardedFailsClosedWhileTheOnlyInstanceFailsItsCheck(t *testing.T) {
	var failing atomic.Bool
	probe := func(ctx context.Context, _ *Instance) error {
		if failing.Load() {
			return errors.New("health check /healthz answered 400")
		}
		return nil
	}
	var served atomic.Int32
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1); io.WriteString(w, "app") })
	cfg := mustConfig(t, "health_path=/healthz&health_interval=20ms")
	g, err := NewGuarded("uwsgi://app", "127.0.0.1:3031", app, cfg, probe, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	serve := func() int {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
		return rec.Code
	}
	waitHealth(t, "the first check", func() bool { return g.Health()[0].Known })
	if code := serve(); code != 200 || served.Load() != 1 {
		t.Fatalf("healthy: %d, served %d", code, served.Load())
	}
	failing.Store(true)
	waitHealth(t, "the instance taken out", func() bool { return !g.Health()[0].Healthy })
	if code := serve(); code != 503 || served.Load() != 1 {
		t.Fatalf("failing: %d, served %d; want 503 without reaching the app", code, served.Load())
	}
	if h := g.Health()[0]; h.Address != "127.0.0.1:3031" || !strings.Contains(h.LastError, "answered 400") {
		t.Fatalf("health %+v", h)
	}
	failing.Store(false)
	waitHealth(t, "the instance back", func() bool { return g.Health()[0].Healthy })
	if code := serve(); code != 200 {
		t.Fatalf("back: %d", code)
	}
}

func TestConnectProbe(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "app.sock")
	probe := ConnectProbe("unix", sock)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := probe(ctx, nil); err == nil {
		t.Fatal("a missing socket passed")
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := probe(ctx, nil); err != nil {
		t.Fatalf("a listening socket failed: %v", err)
	}
}

func TestRequestProbeJudgesTheStatusAndNamesTheCause(t *testing.T) {
	var pl ProbeLog
	logger := pl.Logger()
	var gotHost, gotURI string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotURI = r.Host, r.RequestURI
		switch r.URL.Path {
		case "/shop/ok":
			io.WriteString(w, "fine")
		case "/shop/down":
			logger.Warn("upstream request failed", "cause", "connecting: connection refused")
			http.Error(w, "Bad Gateway", http.StatusBadGateway)
		default:
			http.NotFound(w, r)
		}
	})
	ctx := context.Background()
	want, _ := ParseStatusSet("2xx")
	if err := RequestProbe(h, &pl, "/shop", "/ok", "app.example.com", want)(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if gotHost != "app.example.com" || gotURI != "/shop/ok" {
		t.Fatalf("the app saw Host %q URI %q", gotHost, gotURI)
	}
	if err := RequestProbe(h, &pl, "/shop", "/missing", "h", want)(ctx, nil); err == nil || err.Error() != "health check /missing answered 404" {
		t.Fatalf("404: %v", err)
	}
	if err := RequestProbe(h, &pl, "/shop", "/down", "h", want)(ctx, nil); err == nil || err.Error() != "health check /down failed: connecting: connection refused" {
		t.Fatalf("502: %v", err)
	}
}
