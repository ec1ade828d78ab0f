package gateway

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// lockedBuffer is a log sink safe for the Reloader's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReloaderSwapsKeepsOnFailureWarnsAndRebuilds drives a Reloader the way an embedding program does:
// a reload that builds is swapped in and logged with its generation; one that fails to load keeps the
// running configuration and returns the error; a changed listener setting is named as needing a restart;
// Rebuild runs its hook under the lock and swaps in a new generation of the running configuration.
func TestReloaderSwapsKeepsOnFailureWarnsAndRebuilds(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	env := map[string]string{"GATEWAY_PRIMARY": "inproc://a"}
	var loadErr error
	load := func() (config.Config, error) {
		cfg, err := config.Load(env, nil)
		if loadErr != nil {
			return cfg, loadErr
		}
		return cfg, err
	}
	builds := 0
	build := func(cfg config.Config, prev *Gateway) (*Gateway, error) {
		builds++
		return Build(cfg, Options{Registry: builtin.Registry(logger, abApps), Logger: logger, Previous: prev})
	}
	rl, live, body := startReloader(t, logger, load, build)
	var retained []*Gateway
	var retainMu sync.Mutex
	rl.Retain = func(g *Gateway) { retainMu.Lock(); retained = append(retained, g); retainMu.Unlock() }

	env["GATEWAY_PRIMARY"], env["GATEWAY_MAX_CONNS"] = "inproc://b", "7"
	if err := rl.Reload("test", false); err != nil {
		t.Fatal(err)
	}
	if got := body(); got != "b" {
		t.Errorf("after the reload: %q, want b", got)
	}
	if got := rl.Running().Primary; got != "inproc://b" {
		t.Errorf("Running().Primary = %q", got)
	}
	for _, want := range []string{`msg="configuration reloaded" trigger=test generation=2`, `setting=GATEWAY_MAX_CONNS running=8192 configured=7`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}

	loadErr = errors.New("broken file")
	env["GATEWAY_PRIMARY"] = "inproc://a"
	if err := rl.Reload("test", false); err == nil || err.Error() != "broken file" {
		t.Fatalf("failed reload returned %v", err)
	}
	if got := body(); got != "b" {
		t.Errorf("after a failed reload: %q, want b (kept)", got)
	}
	if !strings.Contains(logs.String(), `msg="configuration reload failed; keeping the running configuration" trigger=test cause="broken file"`) {
		t.Errorf("no failure line:\n%s", logs.String())
	}

	before := builds
	hooked := false
	seq, err := rl.Rebuild(func() { hooked = true })
	if err != nil || !hooked || seq != 3 || builds != before+1 {
		t.Fatalf("Rebuild = %d, %v (hook ran %v, builds %d -> %d)", seq, err, hooked, before, builds)
	}
	if got := body(); got != "b" {
		t.Errorf("after Rebuild: %q, want b (the running configuration, not re-read)", got)
	}
	retainMu.Lock()
	defer retainMu.Unlock()
	found := false
	for _, g := range retained {
		found = found || g == live.Gateway()
	}
	if !found {
		t.Errorf("Retain was not called with the gateway Rebuild installed (called %d times)", len(retained))
	}
}

// A file that keeps changing beside the configuration file (a log, a database) does not hold off the
// reload of a configuration change: Watch reloads within its longest wait after the change, not once the
// directory has gone quiet.
func TestWatchReloadsWhileTheDirectoryKeepsChanging(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(file, []byte("primary: inproc://a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	load := func() (config.Config, error) { return config.Load(map[string]string{"GATEWAY_CONFIG": file}, nil) }
	build := func(cfg config.Config, prev *Gateway) (*Gateway, error) {
		return Build(cfg, Options{Registry: builtin.Registry(logger, abApps), Logger: logger, Previous: prev})
	}
	rl, _, body := startReloader(t, logger, load, build)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const settle = 50 * time.Millisecond // so the longest wait is 500 ms
	if err := rl.Watch(ctx, settle); err != nil {
		t.Fatal(err)
	}
	// The noise: a write to another file of the directory every 10 ms, for as long as the test runs
	// (at most 10 s).
	noiseDone := make(chan struct{})
	go func() {
		defer close(noiseDone)
		noise := filepath.Join(dir, "app.log")
		for i := 0; i < 1000 && ctx.Err() == nil; i++ {
			f, err := os.OpenFile(noise, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err == nil {
				f.WriteString("x\n")
				f.Close()
			}
			time.Sleep(10 * time.Millisecond) // the noise's own pace, not synchronisation
		}
	}()
	defer func() { cancel(); <-noiseDone }()
	time.Sleep(3 * settle) // the noise is under way before the change (its pace, not synchronisation)
	if err := os.WriteFile(file, []byte("primary: inproc://b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	for body() != "b" {
		if time.Since(changed) > 3*time.Second {
			t.Fatalf("the configuration change was not reloaded within 3 s while another file kept changing")
		}
		time.Sleep(5 * time.Millisecond) // bounded poll: the reload runs on the watcher's goroutine
	}
}

// abApps are two in-process apps answering "a" and "b": configurations swap one for the other.
var abApps = map[string]http.Handler{
	"a": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("a")) }),
	"b": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("b")) }),
}

// startReloader loads and builds the first configuration, serves it on a Live (closed when the test
// ends) and returns the Reloader over it (logging to logger), the Live, and body: what the current
// gateway answers to GET /.
func startReloader(t *testing.T, logger *slog.Logger, load func() (config.Config, error), build func(config.Config, *Gateway) (*Gateway, error)) (*Reloader, *Live, func() string) {
	t.Helper()
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	g, err := build(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := NewLive(logger)
	live.Swap(g)
	t.Cleanup(live.Close)
	rl := NewReloader(cfg, live, load, build)
	rl.Logger = logger
	body := func() string {
		rec := httptest.NewRecorder()
		live.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		return rec.Body.String()
	}
	return rl, live, body
}
