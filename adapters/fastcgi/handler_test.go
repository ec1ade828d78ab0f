package fastcgi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/internal/leakcheck"
	"github.com/switchyard/switchyard/internal/testpeer"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// countingListener counts accepted connections, to observe keep-alive reuse.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// listen opens a loopback TCP or unix listener and returns it with the APP URL that reaches it.
func listen(t *testing.T, network string) (*countingListener, string) {
	t.Helper()
	var ln net.Listener
	var err error
	var app string
	if network == "unix" {
		path := testpeer.SocketPath(t, "app.sock")
		ln, err = net.Listen("unix", path)
		app = "fastcgi+unix://" + path
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			app = "fastcgi://" + ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return &countingListener{Listener: ln}, app
}

// serveFCGI serves h with the standard library's FastCGI responder.
func serveFCGI(t *testing.T, network string, h http.Handler) (*countingListener, string) {
	t.Helper()
	ln, app := listen(t, network)
	done := make(chan struct{})
	go func() { _ = fcgi.Serve(ln, h); close(done) }()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln, app
}

type syncBuffer = adaptertest.LogBuffer

// gateway builds app through a registry, mounts it under mount and serves it on a loopback server.
func gateway(t *testing.T, app, mount string) (*Handler, *httptest.Server, *syncBuffer) {
	t.Helper()
	h, srv, logs := adaptertest.Serve(t, Kind(), app, mount)
	return h.(*Handler), srv, logs
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// echoApp answers with what it was given, as JSON.
func echoApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-App", "echo")
		json.NewEncoder(w).Encode(map[string]any{
			"method":         r.Method,
			"uri":            r.URL.RequestURI(),
			"host":           r.Host,
			"env":            fcgi.ProcessEnv(r),
			"headers":        r.Header,
			"content_length": r.ContentLength,
			"sha256":         sum(body),
		})
	})
}

type echoed struct {
	Method        string            `json:"method"`
	URI           string            `json:"uri"`
	Host          string            `json:"host"`
	Env           map[string]string `json:"env"`
	Headers       http.Header       `json:"headers"`
	ContentLength int64             `json:"content_length"`
	Sha256        string            `json:"sha256"`
}

func doJSON(t *testing.T, req *http.Request) (*http.Response, echoed) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echoed
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("status %d body %q: %v", resp.StatusCode, body, err)
		}
	}
	return resp, e
}

// unknownLength hides a reader's length so the client sends it chunked.
type unknownLength struct{ io.Reader }

func TestStdlibResponder(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			ln, app := serveFCGI(t, network, echoApp())
			_, srv, _ := gateway(t, app+"?param.APP_ENV=test&param.SERVER_SOFTWARE=custom", "/app")

			t.Run("a GET reaches the app with the request's params", func(t *testing.T) {
				req, _ := http.NewRequest("GET", srv.URL+"/app/x/y?q=1", nil)
				req.Header.Set("X-Custom", "yes")
				req.Header.Set("Proxy", "http://evil.example")
				resp, e := doJSON(t, req)
				if resp.StatusCode != 200 || resp.Header.Get("X-App") != "echo" {
					t.Fatalf("status %d, X-App %q", resp.StatusCode, resp.Header.Get("X-App"))
				}
				if e.URI != "/app/x/y?q=1" || e.Method != "GET" || e.Headers.Get("X-Custom") != "yes" {
					t.Errorf("request as seen by the app: %+v", e)
				}
				if e.Headers.Get("Proxy") != "" {
					t.Errorf("the Proxy header reached the app (httpoxy)")
				}
				if e.Env["APP_ENV"] != "test" || e.Env["SERVER_SOFTWARE"] != "custom" || e.Env["GATEWAY_INTERFACE"] != "CGI/1.1" {
					t.Errorf("configured params: %v", e.Env)
				}
			})
			t.Run("a POST body arrives whole with its length", func(t *testing.T) {
				body := bytes.Repeat([]byte("0123456789"), 20000) // several STDIN records
				req, _ := http.NewRequest("POST", srv.URL+"/app/upload", bytes.NewReader(body))
				_, e := doJSON(t, req)
				if e.Sha256 != sum(body) || e.ContentLength != int64(len(body)) {
					t.Errorf("app got %d bytes with sha %s", e.ContentLength, e.Sha256)
				}
			})
			for _, size := range []int{0, 10, 3 << 20} {
				t.Run(fmt.Sprintf("a chunked body of %d bytes gets a CONTENT_LENGTH", size), func(t *testing.T) {
					body := bytes.Repeat([]byte("z"), size)
					req, _ := http.NewRequest("POST", srv.URL+"/app/upload", unknownLength{bytes.NewReader(body)})
					_, e := doJSON(t, req)
					if e.Sha256 != sum(body) || e.ContentLength != int64(size) {
						t.Errorf("app got CONTENT_LENGTH %d with sha %s", e.ContentLength, e.Sha256)
					}
				})
			}
			t.Run("sequential requests reuse one connection", func(t *testing.T) {
				before := ln.n.Load()
				for i := 0; i < 5; i++ {
					req, _ := http.NewRequest("GET", srv.URL+"/app/", nil)
					if resp, _ := doJSON(t, req); resp.StatusCode != 200 {
						t.Fatalf("status %d", resp.StatusCode)
					}
				}
				if n := ln.n.Load() - before; n > 0 {
					t.Errorf("%d new connections for 5 sequential requests after warm-up, want 0", n)
				}
			})
		})
	}
}

func TestStreamsTheResponseAsItArrives(t *testing.T) {
	release := make(chan struct{})
	_, app := serveFCGI(t, "unix", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "data: second\n\n")
	}))
	_, srv, _ := gateway(t, app, "")
	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(release) // the app only writes the second event once the first reached the client
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "\ndata: second\n\n" {
		t.Fatalf("rest: %q, %v", rest, err)
	}
}

func TestScriptModeParams(t *testing.T) {
	_, app := serveFCGI(t, "tcp", echoApp())
	_, srv, _ := gateway(t, app+"?root=/srv/www&check_file=false", "/php")
	req, _ := http.NewRequest("GET", srv.URL+"/php/info.php/extra/path?a=b", nil)
	_, e := doJSON(t, req)
	if e.Env["SCRIPT_FILENAME"] != "/srv/www/info.php" || e.Env["DOCUMENT_ROOT"] != "/srv/www" || e.URI != "/php/info.php/extra/path?a=b" {
		t.Errorf("SCRIPT_FILENAME %q DOCUMENT_ROOT %q URI %q", e.Env["SCRIPT_FILENAME"], e.Env["DOCUMENT_ROOT"], e.URI)
	}
}

// rawApp serves a scripted FastCGI peer: it reads each request up to its empty STDIN record and lets
// answer write the response bytes.
func rawApp(t *testing.T, answer func(c net.Conn, id uint16)) string {
	t.Helper()
	ln, app := listen(t, "unix")
	testpeer.Serve(t, ln, func(c net.Conn) {
		rr := recordReader{br: bufio.NewReader(c)}
		for {
			h, err := rr.Next()
			if err != nil {
				return
			}
			if h.Type == typeStdin && h.ContentLength == 0 {
				answer(c, h.ID)
				return
			}
		}
	})
	return app
}

// records encodes a response for request id.
func records(id uint16, parts ...any) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	for i := 0; i < len(parts); i += 2 {
		_ = writeRecord(w, uint8(parts[i].(int)), id, []byte(parts[i+1].(string)))
	}
	w.Flush()
	return b.Bytes()
}

const endOK = "\x00\x00\x00\x00\x00\x00\x00\x00"

func TestFailures(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(c net.Conn, id uint16)
		opts    string
		status  int
		logWant string
	}{
		{
			name:   "garbage instead of records is a 502",
			answer: func(c net.Conn, id uint16) { io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nhello") },
			status: 502, logWant: "fastcgi protocol error",
		},
		{
			name:   "a connection closed before the header is a 502",
			answer: func(c net.Conn, id uint16) { c.Write(records(id, typeStdout, "Content-Type: te")) },
			status: 502, logWant: "END_REQUEST",
		},
		{
			name: "a header block without its end is a 502",
			answer: func(c net.Conn, id uint16) {
				c.Write(records(id, typeStdout, "Content-Type: te", typeEndRequest, endOK))
			},
			status: 502, logWant: "malformed CGI response",
		},
		{
			name: "a record for another request is a 502",
			answer: func(c net.Conn, id uint16) {
				c.Write(records(id+1, typeStdout, "Status: 200\r\n\r\n", typeEndRequest, endOK))
			},
			status: 502, logWant: "for request",
		},
		{
			name:   "an overloaded app is a 502",
			answer: func(c net.Conn, id uint16) { c.Write(records(id, typeEndRequest, "\x00\x00\x00\x00\x02\x00\x00\x00")) },
			status: 502, logWant: "overloaded",
		},
		{
			name: "an app silent past the timeout is a 504",
			answer: func(c net.Conn, id uint16) {
				io.Copy(io.Discard, c) // until the gateway gives up and closes
			},
			opts:   "?timeout=100ms",
			status: 504, logWant: "timeout",
		},
		{
			name: "an informational final status is a 502",
			answer: func(c net.Conn, id uint16) {
				c.Write(records(id, typeStdout, "Status: 103\r\n\r\n", typeEndRequest, endOK))
			},
			status: 502,
		},
		{
			name: "a response head over the limit is a 502",
			answer: func(c net.Conn, id uint16) {
				line := "X-Big: " + strings.Repeat("b", 1000) + "\r\n"
				for i := 0; i < 300; i++ { // 300 KiB in records of one line each: over the 256 KiB default
					if _, err := c.Write(records(id, typeStdout, line)); err != nil {
						return // the gateway gave up, as it should
					}
				}
				c.Write(records(id, typeStdout, "\r\nok", typeEndRequest, endOK))
			},
			status: 502, logWant: "header block larger than 262144 bytes",
		},
		{
			name: "stderr is logged and the response still served",
			answer: func(c net.Conn, id uint16) {
				c.Write(records(id, typeStderr, "PHP Warning: one\nPHP Warning: two", typeStdout, "Status: 404 Not Found\r\n\r\nnope", typeEndRequest, endOK))
			},
			status: 404, logWant: "PHP Warning: two",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := rawApp(t, tt.answer)
			_, srv, logs := gateway(t, app+tt.opts, "")
			resp, err := http.Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if !strings.Contains(logs.String(), tt.logWant) {
				t.Errorf("log lacks %q:\n%s", tt.logWant, logs.String())
			}
		})
	}
}

func TestAbortsAResponseCutAfterTheHeader(t *testing.T) {
	app := rawApp(t, func(c net.Conn, id uint16) {
		c.Write(records(id, typeStdout, "Content-Type: text/plain\r\n\r\npartial"))
	})
	_, srv, logs := gateway(t, app, "")
	resp, err := http.Get(srv.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("status %d, body %q, err %v: want a 200 whose body breaks off", resp.StatusCode, body, err)
	}
	if !strings.Contains(logs.String(), "upstream response aborted") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestUnreachableApps(t *testing.T) {
	tests := []struct{ name, app string }{
		{name: "an absent unix socket is a 502", app: "fastcgi+unix://" + testpeer.SocketPath(t, "none.sock")},
		{name: "a closed TCP port is a 502", app: "fastcgi://" + testpeer.FreePort(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv, _ := gateway(t, tt.app, "")
			resp, err := http.Get(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 502 {
				t.Fatalf("status %d, want 502", resp.StatusCode)
			}
		})
	}
}

func TestClosedHandlerRefuses(t *testing.T) {
	_, app := serveFCGI(t, "unix", echoApp())
	h, srv, _ := gateway(t, app, "")
	if resp, _ := doJSON(t, mustRequest("GET", srv.URL+"/")); resp.StatusCode != 200 {
		t.Fatalf("status %d before Close", resp.StatusCode)
	}
	h.Close()
	if resp, _ := doJSON(t, mustRequest("GET", srv.URL+"/")); resp.StatusCode != 502 {
		t.Fatalf("status %d after Close, want 502", resp.StatusCode)
	}
}

func mustRequest(method, url string) *http.Request {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		panic(err)
	}
	return req
}

func TestClientCancelClosesTheAppConnection(t *testing.T) {
	gotRequest := make(chan struct{})
	appSawClose := make(chan struct{})
	app := rawApp(t, func(c net.Conn, id uint16) {
		close(gotRequest)
		io.Copy(io.Discard, c)
		close(appSawClose)
	})
	_, srv, _ := gateway(t, app, "")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	<-gotRequest
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client err %v", err)
	}
	select {
	case <-appSawClose:
	case <-time.After(5 * time.Second):
		t.Fatal("the app connection stayed open after the client left")
	}
}

func TestFactoryOptions(t *testing.T) {
	tests := []struct {
		name, app, wantErr string
	}{
		{name: "a TCP app without a port defaults to 9000", app: "fastcgi://127.0.0.1"},
		{name: "script mode with every option", app: "fastcgi+unix:///run/php.sock?root=/srv/www&index=app.php&ext=.php&check_file=false&timeout=5s&max_idle=0&param.HTTPS=on"},
		{name: "index without root is refused", app: "fastcgi://127.0.0.1:9000?index=x.php", wantErr: "needs root"},
		{name: "a relative root is refused", app: "fastcgi://127.0.0.1:9000?root=www", wantErr: "absolute"},
		{name: "an extension without a dot is refused", app: "fastcgi://127.0.0.1:9000?root=/srv&ext=php", wantErr: "extension"},
		{name: "a non-ASCII extension is refused", app: "fastcgi://127.0.0.1:9000?root=/srv&ext=.ph%D0%A0", wantErr: "extension"},
		{name: "an index with a slash is refused", app: "fastcgi://127.0.0.1:9000?root=/srv&index=a/b.php", wantErr: "file name"},
		{name: "a configured CONTENT_LENGTH is refused", app: "fastcgi://127.0.0.1:9000?param.CONTENT_LENGTH=5", wantErr: "CONTENT_LENGTH"},
		{name: "a bad param name is refused", app: "fastcgi://127.0.0.1:9000?param.A-B=5", wantErr: "param.NAME"},
		{name: "an out-of-range max_idle is refused", app: "fastcgi://127.0.0.1:9000?max_idle=1000", wantErr: "max_idle"},
		{name: "a unix app without a path is refused", app: "fastcgi+unix://", wantErr: "fastcgi+unix:///"},
		{name: "a TCP app with a path is refused", app: "fastcgi://127.0.0.1:9000/x", wantErr: "host:port"},
		{name: "an unknown option is refused", app: "fastcgi://127.0.0.1:9000?colour=red", wantErr: "colour"},
		{name: "read_timeout is accepted", app: "fastcgi://127.0.0.1:9000?read_timeout=5s"},
		{name: "a negative read_timeout is refused", app: "fastcgi://127.0.0.1:9000?read_timeout=-1s", wantErr: "read_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
			reg.MustRegister(Kind())
			tgt, _, err := reg.Parse(tt.app)
			if err != nil {
				t.Fatal(err)
			}
			h, err := reg.Build(tgt)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				h.(*Handler).Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadTimeoutAndHeadLimitDefaults(t *testing.T) {
	tests := []struct {
		name        string
		query       string
		gateway     time.Duration // Target.ReadTimeout
		gatewayHead int64         // Target.MaxResponseHeaderBytes
		stall       time.Duration
		maxHead     int64
	}{
		{name: "without option or gateway setting the stall limit is 60s and the head limit 256 KiB", stall: DefaultReadTimeout, maxHead: 256 << 10},
		{name: "the gateway's read timeout and head limit are the defaults", gateway: 7 * time.Second, gatewayHead: 1 << 20, stall: 7 * time.Second, maxHead: 1 << 20},
		{name: "a gateway read timeout turned off means no stall limit", gateway: -1, stall: 0, maxHead: 256 << 10},
		{name: "the app's read_timeout beats the gateway's", query: "?read_timeout=2s", gateway: 7 * time.Second, stall: 2 * time.Second, maxHead: 256 << 10},
		{name: "read_timeout=0 turns the limit off", query: "?read_timeout=0s", gateway: 7 * time.Second, stall: 0, maxHead: 256 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
			reg.MustRegister(Kind())
			tgt, _, err := reg.Parse("fastcgi://127.0.0.1:9000" + tt.query)
			if err != nil {
				t.Fatal(err)
			}
			tgt.ReadTimeout, tgt.MaxResponseHeaderBytes = tt.gateway, tt.gatewayHead
			h, err := reg.Build(tgt)
			if err != nil {
				t.Fatal(err)
			}
			defer h.(*Handler).Close()
			if got := h.(*Handler); got.stall != tt.stall || got.maxHead != tt.maxHead {
				t.Fatalf("stall %v, head limit %d; want %v, %d", got.stall, got.maxHead, tt.stall, tt.maxHead)
			}
		})
	}
}

// TestReadTimeoutCutsAStalledBody: read_timeout is a stall limit on the response body. An app that stops
// sending mid-body gets its client's stream cut (never a complete-looking answer) and its connection
// closed (not parked in the pool); an app that keeps sending, however slowly, is never cut.
func TestReadTimeoutCutsAStalledBody(t *testing.T) {
	const limit = 250 * time.Millisecond
	tests := []struct {
		name  string
		opts  string
		pause time.Duration // between body pieces; -1: hang until the gateway closes the connection
		count int           // pieces after the first
		cut   bool
	}{
		{name: "an app silent mid-body past read_timeout is cut and its connection closed", opts: "?max_idle=2&read_timeout=" + limit.String(), pause: -1, cut: true},
		// read_timeout ten times the app's pace, the stream longer than read_timeout: a loaded machine
		// delays a heartbeat by a few hundred ms at times, which is scheduling, not a stall.
		{name: "a stream with heartbeats more often than read_timeout is never cut", opts: "?max_idle=2&read_timeout=1s", pause: 100 * time.Millisecond, count: 15},
		{name: "read_timeout=0 lets a body pause longer than the test's limit", opts: "?read_timeout=0", pause: 2 * limit, count: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			appClosed := make(chan struct{})
			app := rawApp(t, func(c net.Conn, id uint16) {
				c.Write(records(id, typeStdout, "Content-Type: text/plain\r\n\r\nfirst;"))
				if tt.pause < 0 {
					io.Copy(io.Discard, c) // until the gateway closes the connection
					close(appClosed)
					return
				}
				for i := 0; i < tt.count; i++ {
					time.Sleep(tt.pause) // the app's own pace, not a synchronisation
					c.Write(records(id, typeStdout, "beat;"))
				}
				c.Write(records(id, typeEndRequest, endOK))
			})
			_, srv, logs := gateway(t, app+tt.opts, "")
			start := time.Now()
			resp, err := http.Get(srv.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if !tt.cut {
				if err != nil || resp.StatusCode != 200 || string(body) != "first;"+strings.Repeat("beat;", tt.count) {
					t.Fatalf("status %d body %q err %v, want the whole stream", resp.StatusCode, body, err)
				}
				return
			}
			if resp.StatusCode != 200 || err == nil || string(body) != "first;" {
				t.Fatalf("status %d body %q err %v, want a 200 whose body breaks off after the first piece", resp.StatusCode, body, err)
			}
			// Not before the limit; and well before any default (60 s): the cut is read_timeout's. The
			// generous bound is no speed target, only which limit acted.
			if took < limit || took > limit+20*time.Second {
				t.Errorf("cut after %v, want it from read_timeout %v", took, limit)
			}
			select {
			case <-appClosed:
			case <-time.After(5 * time.Second):
				t.Fatal("the stalled connection is still open (kept in the pool?)")
			}
			if l := logs.String(); !strings.Contains(l, "stalled mid-body") || !strings.Contains(l, "read_timeout") || !strings.Contains(l, "app=fastcgi+unix:/") || !strings.Contains(l, "upstream=unix:") {
				t.Errorf("log lacks the stall line naming the app:\n%s", l)
			}
		})
	}
}

func TestAConnectionTheAppClosedWhileIdleIsNotReused(t *testing.T) {
	// rawApp serves one request per connection and then closes it, although the gateway asked to keep it.
	app := rawApp(t, func(c net.Conn, id uint16) {
		c.Write(records(id, typeStdout, "Content-Type: text/plain\r\n\r\nok", typeEndRequest, endOK))
	})
	_, srv, _ := gateway(t, app, "")
	for i := 0; i < 3; i++ {
		resp, body := get(t, mustRequest("GET", srv.URL+"/"))
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Fatalf("request %d: status %d body %q", i, resp.StatusCode, body)
		}
	}
}

func TestAnAppAnsweringBeforeTheBodyDoesNotWaitForTheClient(t *testing.T) {
	ln, app := listen(t, "unix")
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rr := recordReader{br: bufio.NewReader(c)}
		for {
			h, err := rr.Next()
			if err != nil {
				return
			}
			if h.Type == typeParams && h.ContentLength == 0 {
				c.Write(records(h.ID, typeStdout, "Status: 413 Too Large\r\n\r\nno thanks", typeEndRequest, endOK))
				io.Copy(io.Discard, c)
				return
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	_, srv, _ := gateway(t, app, "")

	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte("the first bytes of a body that never ends"))
	req, _ := http.NewRequest("POST", srv.URL+"/", pr)
	req.ContentLength = 1 << 20
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || string(body) != "no thanks" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
}

func BenchmarkGET(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }))
		close(done)
	}()
	defer func() { ln.Close(); <-done }()
	reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
	reg.MustRegister(Kind())
	tgt, _, _ := reg.Parse("fastcgi://" + ln.Addr().String())
	h, err := reg.Build(tgt)
	if err != nil {
		b.Fatal(err)
	}
	defer h.(*Handler).Close()
	req := httptest.NewRequest("GET", "/x?y=1", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// TestChunkedBodyFailures covers the failures of spooling a body of unknown length: the app must never be
// asked, and the client hears whose fault it was.
func TestChunkedBodyFailures(t *testing.T) {
	ln, app := serveFCGI(t, "tcp", echoApp())
	h, _, logs := gateway(t, app, "/app")
	// The gateway's body limit, as the front door applies it.
	limited := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<10)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(limited.Close)

	tests := []struct {
		name    string
		chunks  string // the raw chunked body
		status  int
		logWant string
		noTemp  bool // the spool's temporary directory is missing
	}{
		{name: "a spool that cannot write its temporary file is the gateway's 500", noTemp: true,
			chunks: fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 1<<20+1, strings.Repeat("x", 1<<20+1)), status: 500, logWant: "spooling the request body failed"},
		{name: "a malformed chunked body is the client's fault: 400", chunks: "zz\r\nhello\r\n0\r\n\r\n", status: 400, logWant: "bad request body"},
		{name: "a chunked body past the gateway's limit is a 413", chunks: fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 4<<10, strings.Repeat("x", 4<<10)), status: 413, logWant: "request body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := ln.n.Load()
			target := limited
			if tt.noTemp {
				t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
				target = httptest.NewServer(h) // no 1 KiB limit: the body must reach the spool's file stage
				t.Cleanup(target.Close)
			}
			c, err := net.Dial("tcp", target.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "POST /app/upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"+tt.chunks)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if !strings.Contains(logs.String(), tt.logWant) {
				t.Errorf("log lacks %q:\n%s", tt.logWant, logs.String())
			}
			if n := ln.n.Load() - before; n != 0 {
				t.Errorf("the app got %d connections for a body that never became whole", n)
			}
		})
	}
}

// TestAnAppFailingMidUploadIsAnsweredAndClosesTheConnection: an app that hangs up while the client is still
// sending its body gets the client a 502 and the connection closed. The adapter wakes its body writer,
// blocked reading the client, with an expired read deadline; that failed read cancels the context of the
// client's connection (net/http does so on any read error) and leaves the rest of the body on the wire.
// Waking it before answering made the answer a client-gone 499, so net/http sent an empty 200, and kept
// the connection, whose every later request would have started cancelled.
func TestAnAppFailingMidUploadIsAnsweredAndClosesTheConnection(t *testing.T) {
	ln, app := listen(t, "unix")
	testpeer.Serve(t, ln, func(c net.Conn) {
		rr := recordReader{br: bufio.NewReader(c)}
		for {
			h, err := rr.Next()
			if err != nil || h.Type == typeStdin {
				return // hangs up at the first piece of body
			}
		}
	})
	_, srv, _ := gateway(t, app, "")
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The client sends the start of its body and waits for the answer before sending more.
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nthe start")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !resp.Close {
		t.Errorf("got %d %q (connection close %v), want 502 and the connection closed", resp.StatusCode, body, resp.Close)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection stayed open")
	}
}
