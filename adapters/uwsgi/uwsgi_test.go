package uwsgi

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/adapters/cgiwire/wiretest"
	"github.com/switchyard/switchyard/internal/testpeer"
)

type logBuffer = adaptertest.LogBuffer

// gateway serves the app at appURL mounted under mount through a registry, as the router would.
func gateway(t *testing.T, appURL, mount string) (*httptest.Server, *logBuffer) {
	t.Helper()
	_, srv, logs := adaptertest.Serve(t, Kind(), appURL, mount)
	return srv, logs
}

// TestAgainstRealUWSGI runs the shared conformance suite against a real uWSGI's --socket listener. uwsgi
// alone sends UWSGI_SCHEME and frames the variables in a 64 KiB block.
func TestAgainstRealUWSGI(t *testing.T) {
	wiretest.Run(t, wiretest.Kind{Adapter: Kind(), Scheme: "uwsgi", Socket: "uwsgi", SchemeVar: "UWSGI_SCHEME", VarsLimit: true})
}

// fakeUWSGI accepts one connection at a time on a unix socket, reads the packet, and lets serve answer.
func fakeUWSGI(t *testing.T, serve func(c net.Conn, vars map[string]string, body io.Reader)) string {
	t.Helper()
	return "uwsgi+unix://" + testpeer.ServeUnix(t, "fake.sock", func(c net.Conn) {
		br := bufio.NewReader(c)
		m1, m2, vars, err := ReadPacket(br)
		if err != nil || m1 != 0 || m2 != 0 {
			t.Errorf("bad packet: %v (modifiers %d %d)", err, m1, m2)
			return
		}
		m := map[string]string{}
		for _, v := range vars {
			m[v.Name] = v.Value
		}
		serve(c, m, br)
	})
}

func TestAgainstAFakeServer(t *testing.T) {
	tests := []struct {
		name      string
		serve     func(c net.Conn, vars map[string]string, body io.Reader)
		status    int
		body      string
		truncated bool
	}{
		{name: "garbage instead of an HTTP head answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) { io.WriteString(c, "this is not http\r\n\r\n") }},
		{name: "a status code outside 100-999 answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) { io.WriteString(c, "HTTP/1.1 000 Zero\r\n\r\n") }},
		{name: "a 101 Switching Protocols answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			}},
		{name: "a connection closed without an answer answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {}},
		{name: "a head cut short answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/")
			}},
		{name: "a chunked body cut short aborts the response", status: 200, truncated: true,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
			}},
		{name: "hop-by-hop headers are dropped and the final answer follows a 100 Continue", status: 201, body: "ok",
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: x\r\nContent-Length: 2\r\n\r\nok")
			}},
		{name: "the body follows the vars and CONTENT_LENGTH frames it", status: 200, body: "CL=5 body=hello",
			serve: func(c net.Conn, vars map[string]string, body io.Reader) {
				b := make([]byte, 5)
				io.ReadFull(body, b)
				io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nCL="+vars["CONTENT_LENGTH"]+" body="+string(b))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := gateway(t, fakeUWSGI(t, tt.serve), "")
			resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader("hello"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.truncated {
				if err == nil {
					t.Fatalf("truncated body %q looked complete", body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			for _, h := range []string{"X-Secret", "Keep-Alive", "Connection"} {
				if resp.Header.Get(h) != "" {
					t.Errorf("hop-by-hop header %s forwarded", h)
				}
			}
		})
	}
}

func TestCancelledClientGetsNoAnswer(t *testing.T) {
	accepted := make(chan struct{})
	release := make(chan struct{})
	app := fakeUWSGI(t, func(c net.Conn, _ map[string]string, _ io.Reader) {
		close(accepted)
		<-release
	})
	defer close(release)
	logs := &logBuffer{}
	reg := adapters.NewRegistry(slog.New(slog.NewTextHandler(logs, nil)))
	reg.MustRegister(Kind())
	target, _, _ := reg.Parse(app)
	h, err := reg.Build(target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() { h.ServeHTTP(rec, req); close(done) }()
	<-accepted
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not return after the client went away")
	}
	if rec.Body.Len() != 0 || !strings.Contains(logs.String(), "status=499") {
		t.Errorf("answered %d %q; log %s", rec.Code, rec.Body, logs.String())
	}
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name string
		app  string
		ok   bool
	}{
		{name: "a TCP address with a port is accepted", app: "uwsgi://127.0.0.1:3031", ok: true},
		{name: "a unix socket path is accepted", app: "uwsgi+unix:///run/app.sock", ok: true},
		{name: "all options are accepted", app: "uwsgi://h:1?timeout=5s&read_timeout=2s&dial_timeout=1s&modifier1=5&param.UWSGI_APPID=a", ok: true},
		{name: "a TCP address without a port is refused", app: "uwsgi://127.0.0.1"},
		{name: "a path after the TCP address is refused", app: "uwsgi://127.0.0.1:1/x"},
		{name: "a relative unix path is refused", app: "uwsgi+unix:app.sock"},
		{name: "an unknown option is refused", app: "uwsgi://h:1?timout=5s"},
		{name: "a configured CONTENT_LENGTH is refused", app: "uwsgi://h:1?param.CONTENT_LENGTH=3"},
		{name: "a parameter name with odd bytes is refused", app: "uwsgi://h:1?param.A%3DB=3"},
		{name: "a modifier1 over 255 is refused", app: "uwsgi://h:1?modifier1=256"},
	}
	reg := adapters.NewRegistry(nil)
	reg.MustRegister(Kind())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, _, err := reg.Parse(tt.app)
			if err == nil {
				_, err = reg.Build(target)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
