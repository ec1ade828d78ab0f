package cgiwire_test

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
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
		name   string
		length int64
	}{
		{name: "a known-length body over the gateway's limit answers 413", length: 100},
		{name: "a chunked body over the gateway's limit answers 413", length: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 100)))
			req.ContentLength = tt.length
			rec := httptest.NewRecorder()
			limited.ServeHTTP(rec, req)
			if rec.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
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
