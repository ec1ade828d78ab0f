package cgiwire_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/uwsgi"
	"github.com/switchyard/switchyard/adapters/uwsgi/cgiwire"
	"github.com/switchyard/switchyard/internal/testpeer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeApp answers each uwsgi connection with serve after reading the packet.
func fakeApp(t *testing.T, serve func(c net.Conn, body io.Reader)) string {
	t.Helper()
	path := testpeer.SocketPath(t, "app.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				if _, _, _, err := uwsgi.ReadPacket(br); err != nil {
					t.Errorf("packet: %v", err)
					return
				}
				serve(c, br)
			}()
		}
	}()
	return "uwsgi+unix://" + path
}

func handler(t *testing.T, app string, logs io.Writer) http.Handler {
	t.Helper()
	reg := adapters.NewRegistry(slog.New(slog.NewTextHandler(logs, nil)))
	reg.MustRegister(uwsgi.Kind())
	target, _, err := reg.Parse(app)
	if err != nil {
		t.Fatal(err)
	}
	h, err := reg.Build(target)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.(*cgiwire.Handler); !ok {
		t.Fatalf("handler is %T", h)
	}
	return h
}

func TestClientBodyFailures(t *testing.T) {
	app := fakeApp(t, func(c net.Conn, body io.Reader) {
		io.Copy(io.Discard, body)
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nread it all")
	})
	var logs bytes.Buffer
	h := handler(t, app, &logs)
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 10)
		h.ServeHTTP(w, r)
	})
	tests := []struct {
		name      string
		body      io.Reader
		length    int64
		gone      bool // the client went away first
		status    int  // 0: no answer at all
		unlimited bool
		noTemp    bool // the temp directory is missing
	}{
		{name: "a known-length body over the gateway's limit answers 413", length: 100, status: 413},
		{name: "a chunked body over the gateway's limit answers 413", length: -1, status: 413},
		{name: "a chunked body the client breaks answers 400", length: -1, status: 400, unlimited: true,
			body: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(errors.New("unexpected EOF in chunk")))},
		{name: "a client gone while its chunked body is spooled gets no answer", length: -1, gone: true, unlimited: true},
		{name: "a chunked body the gateway cannot spool (no temp dir) answers 500", length: -1, status: 500, unlimited: true,
			noTemp: true, body: strings.NewReader(strings.Repeat("y", cgiwire.SpoolMemory+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == nil {
				body = strings.NewReader(strings.Repeat("x", 100))
			}
			req := httptest.NewRequest("POST", "/", body)
			req.ContentLength = tt.length
			if tt.noTemp {
				t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
			}
			if tt.gone {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			rec := httptest.NewRecorder()
			if tt.unlimited {
				h.ServeHTTP(rec, req)
			} else {
				limited.ServeHTTP(rec, req)
			}
			if tt.status == 0 {
				if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
					t.Fatalf("answered %d %q to a client that is gone", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
		})
	}
}

func TestAnEarlyAnswerDoesNotWaitForASlowUpload(t *testing.T) {
	tests := []struct {
		name   string
		length int64
	}{
		// Under 256 KiB net/http tries to drain the body before the head: without full duplex that
		// deadlocked against our pending body read.
		{name: "a small declared body", length: 1000},
		{name: "a large declared body", length: 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fakeApp(t, func(c net.Conn, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
			})
			var logs bytes.Buffer
			h := handler(t, app, &logs)
			returned := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(returned)
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()

			pr, pw := io.Pipe()
			defer pw.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/", pr)
			req.ContentLength = tt.length
			go pw.Write([]byte("only the start of the body")) // then the client stalls
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 403 || string(body) != "nope" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			select {
			case <-returned:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler is still waiting for the stalled upload")
			}
		})
	}
}
