package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// syncBuf is a log sink tests can read while the gateway writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startGateway builds a gateway from environment-style settings and serves it on a loopback port.
func startGateway(t *testing.T, env map[string]string) (*httptest.Server, *syncBuf) {
	t.Helper()
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	srv := httptest.NewUnstartedServer(g.Handler)
	srv.Config = Server(cfg, g.Handler, logger)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		g.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return srv, logs
}

// app is an upstream that reports what it received as JSON.
type seen struct {
	App, Method, Path, Query, Host, Body string
	Header                               map[string]string
}

func reportingApp(t *testing.T, name string, status int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h := map[string]string{}
		for k := range r.Header {
			h[k] = r.Header.Get(k)
		}
		sum := sha256.Sum256(b)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(seen{App: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host,
			Body: fmt.Sprintf("%x/%d", sum, len(b)), Header: h})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, c *http.Client, method, url string, body io.Reader, hdr map[string]string) (*http.Response, seen) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var s seen
	_ = json.Unmarshal(raw, &s)
	return resp, s
}

func TestRoutesPrimaryAndDelegate(t *testing.T) {
	primary := reportingApp(t, "primary", 200)
	delegate := reportingApp(t, "delegate", 200)
	api := reportingApp(t, "api", 200)
	legacySock := filepath.Join(t.TempDir(), "legacy.sock")
	ln, err := net.Listen("unix", legacySock)
	if err != nil {
		t.Fatal(err)
	}
	legacy := httptest.NewUnstartedServer(reportingApp(t, "legacy", 200).Config.Handler)
	legacy.Listener = ln
	legacy.Start()
	t.Cleanup(legacy.Close)
	missing := reportingApp(t, "primary-404", 404)

	gw, _ := startGateway(t, map[string]string{
		"GATEWAY_PRIMARY":   missing.URL,
		"GATEWAY_DELEGATES": delegate.URL,
		"GATEWAY_ROUTES":    "/api/=" + api.URL + "?strip_prefix=true,/legacy/=unix://" + legacySock + ",/new/=" + primary.URL,
	})
	tests := []struct {
		name, path, app, appPath, prefix string
	}{
		{"a stripped route sees the path below its mount and the prefix header", "/api/users?x=1", "api", "/users", "/api"},
		{"a unix-socket route is reached over the socket", "/legacy/page", "legacy", "/legacy/page", ""},
		{"an unstripped route sees the full path", "/new/thing", "primary", "/new/thing", ""},
		{"what the primary answers 404 is passed to the delegate", "/other", "delegate", "/other", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, s := get(t, nil, "GET", gw.URL+tt.path, nil, nil)
			if resp.StatusCode != 200 || s.App != tt.app || s.Path != tt.appPath || s.Header["X-Forwarded-Prefix"] != tt.prefix {
				t.Fatalf("got %d %+v, want app %s path %s prefix %q", resp.StatusCode, s, tt.app, tt.appPath, tt.prefix)
			}
			if s.Host != strings.TrimPrefix(gw.URL, "http://") {
				t.Errorf("app saw Host %q, want the client's %q", s.Host, strings.TrimPrefix(gw.URL, "http://"))
			}
		})
	}
}

func TestPOSTBodyIsResentToTheDelegateByteForByte(t *testing.T) {
	primary := reportingApp(t, "primary", 404)
	delegate := reportingApp(t, "delegate", 201)
	gw, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": primary.URL, "GATEWAY_DELEGATES": delegate.URL})
	body := make([]byte, 1<<20)
	rand.Read(body)
	resp, s := get(t, nil, "POST", gw.URL+"/form", bytes.NewReader(body), map[string]string{"Content-Type": "application/octet-stream"})
	want := fmt.Sprintf("%x/%d", sha256.Sum256(body), len(body))
	if resp.StatusCode != 201 || s.App != "delegate" || s.Method != "POST" || s.Body != want {
		t.Fatalf("got %d %s %s %s, want 201 from the delegate with body %s", resp.StatusCode, s.App, s.Method, s.Body, want)
	}
}

func TestSpoofedForwardingHeadersNeverReachAnApp(t *testing.T) {
	app := reportingApp(t, "app", 200)
	for _, tc := range []struct {
		name, trusted, wantXFF, wantProto string
	}{
		{"an untrusted client's X-Forwarded-For is replaced by its address", "", "127.0.0.1", "http"},
		{"a trusted proxy's X-Forwarded-For is extended", "127.0.0.0/8", "203.0.113.7, 127.0.0.1", "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"GATEWAY_PRIMARY": app.URL}
			if tc.trusted != "" {
				env["GATEWAY_TRUSTED_PROXIES"] = tc.trusted
			}
			gw, _ := startGateway(t, env)
			_, s := get(t, nil, "GET", gw.URL+"/", nil, map[string]string{
				"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Real-IP": "203.0.113.7", "Forwarded": "for=203.0.113.7",
			})
			if s.Header["X-Forwarded-For"] != tc.wantXFF || s.Header["X-Forwarded-Proto"] != tc.wantProto {
				t.Fatalf("app saw X-Forwarded-For %q Proto %q, want %q %q", s.Header["X-Forwarded-For"], s.Header["X-Forwarded-Proto"], tc.wantXFF, tc.wantProto)
			}
			if tc.trusted == "" && (s.Header["X-Real-Ip"] != "" || s.Header["Forwarded"] != "") {
				t.Fatalf("spoofed headers reached the app: %v", s.Header)
			}
		})
	}
}

func TestWebSocketEchoThroughTheGateway(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(echo.Close)
	old := reportingApp(t, "old", 200)
	// Once as a route, once through the primary/delegate cascade (the upgrade must pass its buffering).
	for _, env := range []map[string]string{
		{"GATEWAY_PRIMARY": old.URL, "GATEWAY_ROUTES": "/ws/=" + echo.URL},
		{"GATEWAY_PRIMARY": echo.URL, "GATEWAY_DELEGATES": old.URL},
	} {
		gw, _ := startGateway(t, env)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw.URL, "http")+"/ws/echo", nil)
		if err != nil {
			cancel()
			t.Fatalf("dial through %v: %v", env, err)
		}
		for i := 0; i < 3; i++ {
			msg := fmt.Sprintf("message %d", i)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != msg {
				t.Fatalf("echo %q, %v; want %q", got, err, msg)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		cancel()
	}
}

func TestServerSentEventsArriveBeforeTheStreamEnds(t *testing.T) {
	release := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: two\n\n")
	}))
	t.Cleanup(sse.Close)
	missing := reportingApp(t, "p", 404)
	gw, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": missing.URL, "GATEWAY_DELEGATES": sse.URL})
	resp, err := http.Get(gw.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: one\n" {
		t.Fatalf("first event %q %v", line, err)
	}
	close(release) // the app sends its second event only now: the first crossed the gateway alone
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: two\n\n" {
		t.Fatalf("rest of stream %q", rest)
	}
}

func TestDownAndSlowAppsGive502And504WithALogLine(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	unblock := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-unblock:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(unblock); slow.Close() })
	gw, logs := startGateway(t, map[string]string{
		"GATEWAY_PRIMARY": deadURL,
		"GATEWAY_ROUTES":  "/slow/=" + slow.URL + "?timeout=200ms",
	})
	for _, tc := range []struct {
		path   string
		status int
		cause  string
	}{{"/x", 502, "connection refused"}, {"/slow/x", 504, "timeout"}} {
		resp, _ := get(t, nil, "GET", gw.URL+tc.path, nil, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s = %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
		if !strings.Contains(logs.String(), tc.cause) || !strings.Contains(logs.String(), "upstream request failed") {
			t.Errorf("no log line naming %q:\n%s", tc.cause, logs.String())
		}
	}
}

func TestLargeDownloadStreamsWithFlatMemory(t *testing.T) {
	size := int64(3 << 30)
	if testing.Short() {
		size = 256 << 20
	}
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(size))
		for sent := int64(0); sent < size; sent += int64(len(chunk)) {
			if _, err := w.Write(chunk[:min(int64(len(chunk)), size-sent)]); err != nil {
				return
			}
		}
	}))
	t.Cleanup(big.Close)
	gw, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": big.URL})

	runtime.GC()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // sample the heap while the body flows
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peak.Load() {
					peak.Store(ms.HeapInuse)
				}
			}
		}
	}()
	resp, err := http.Get(gw.URL + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
	resp.Body.Close()
	close(done)
	wg.Wait()
	if err != nil || n != size {
		t.Fatalf("read %d bytes (%v), want %d", n, err, size)
	}
	if p := peak.Load(); p > 64<<20 {
		t.Fatalf("heap in use peaked at %d MiB while streaming %d MiB: the body is being buffered", p>>20, size>>20)
	}
}

func TestOversizedBodiesGet413(t *testing.T) {
	app := reportingApp(t, "app", 200)
	gw, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": app.URL, "GATEWAY_MAX_BODY_SIZE": "1KiB"})
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(strings.Repeat("x", 4096))
		if chunked {
			body = io.MultiReader(body)
		}
		resp, _ := get(t, nil, "POST", gw.URL+"/", body, nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("chunked=%v: status %d, want 413", chunked, resp.StatusCode)
		}
	}
}

func TestOversizedHeadersGet431(t *testing.T) {
	app := reportingApp(t, "app", 200)
	gw, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": app.URL, "GATEWAY_MAX_HEADER_SIZE": "4KiB"})
	resp, _ := get(t, nil, "GET", gw.URL+"/", nil, map[string]string{"X-Big": strings.Repeat("a", 16<<10)})
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
}

func TestBuildErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GATEWAY_PRIMARY": "ftp://x"}, `GATEWAY_PRIMARY: app "ftp://x": unknown scheme "ftp"`},
		{map[string]string{"GATEWAY_PRIMARY": "http://x", "GATEWAY_ROUTES": "/a/=http://y?timeout=abc"}, `GATEWAY_ROUTES: route /a/: app "http://y?timeout=abc": option timeout="abc": expected a non-negative duration`},
		{map[string]string{"GATEWAY_PRIMARY": "http://x?colour=red"}, `unknown option "colour"`},
	} {
		cfg, err := config.Load(tc.env, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v, want it to contain %q", tc.env, err, tc.want)
		}
	}
}

// An option of the app's kind, checked when the app is built, is named at its own line in the file, as
// the options the plan reads are.
func TestAKindOptionErrorNamesItsLineInTheFile(t *testing.T) {
	file := "routes:\n  - pattern: /a/\n    app: http://127.0.0.1:9\n    options:\n      strip_prefix: \"true\"\n      timeout: abc\n"
	cfg, err := config.Load(map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, func(string) ([]byte, error) { return []byte(file), nil })
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
	want := `gw.yaml:6: routes[0]: route /a/: app "http://127.0.0.1:9?strip_prefix=true&timeout=abc": option timeout="abc": expected a non-negative duration`
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestAStalledUploadGets408AndFreesTheConnection(t *testing.T) {
	primary := reportingApp(t, "primary", 404)
	delegate := reportingApp(t, "delegate", 200)
	gw, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": primary.URL, "GATEWAY_DELEGATES": delegate.URL, "GATEWAY_BODY_TIMEOUT": "200ms",
		"GATEWAY_ROUTES": "/direct/=" + delegate.URL})
	for _, path := range []string{"/form", "/direct/form"} { // held by the cascade; streamed to one app
		stalledUpload(t, gw.Listener.Addr().String(), path)
	}
}

func stalledUpload(t *testing.T, addr, path string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Half the declared body, then silence (a slowloris upload).
	io.WriteString(c, "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"+strings.Repeat("x", 50))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Fatalf("%s: status %d close %v, want 408 and the connection closed", path, resp.StatusCode, resp.Close)
	}
}
