// Package adaptertest owns the scaffolding the adapter packages' tests share: building one application
// through an adapters.Registry exactly as the gateway does (parse, mount, build), serving it on a loopback
// server, and collecting its log lines for assertions and for the report of a failed test.
package adaptertest

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/switchyard/switchyard/adapters"
)

// LogBuffer collects log output written from several goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write implements io.Writer.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Build registers kind in a fresh registry logging at debug level into the returned buffer, and builds the
// app raw mounted under mount. The app is closed (if it is an io.Closer) when the test ends, and its log is
// printed if the test failed.
func Build(t testing.TB, kind adapters.Kind, raw, mount string) (http.Handler, *LogBuffer) {
	t.Helper()
	logs := &LogBuffer{}
	reg := adapters.NewRegistry(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	reg.MustRegister(kind)
	target, _, err := reg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	target.Mount = mount
	h, err := reg.Build(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, ok := h.(io.Closer); ok {
			c.Close()
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return h, logs
}

// Serve builds the app as Build does and serves it on a loopback server closed when the test ends.
func Serve(t testing.TB, kind adapters.Kind, raw, mount string) (http.Handler, *httptest.Server, *LogBuffer) {
	t.Helper()
	h, logs := Build(t, kind, raw, mount)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv, logs
}
