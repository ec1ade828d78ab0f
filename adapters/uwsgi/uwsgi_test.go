package uwsgi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// report is what testdata/app.py answers for ordinary requests.
type report struct {
	ScriptName     string            `json:"SCRIPT_NAME"`
	PathInfo       string            `json:"PATH_INFO"`
	QueryString    string            `json:"QUERY_STRING"`
	RequestURI     string            `json:"REQUEST_URI"`
	Method         string            `json:"REQUEST_METHOD"`
	ContentLength  *string           `json:"CONTENT_LENGTH"`
	URLScheme      string            `json:"wsgi.url_scheme"`
	Vars           map[string]string `json:"vars"`
	BodyLen        int               `json:"body_len"`
	BodySHA256     string            `json:"body_sha256"`
	ApplicationURI string            `json:"application_uri"`
	RequestURL     string            `json:"request_uri"`
}

type logBuffer = adaptertest.LogBuffer

// gateway serves the app at appURL mounted under mount through a registry, as the router would.
func gateway(t *testing.T, appURL, mount string) (*httptest.Server, *logBuffer) {
	t.Helper()
	_, srv, logs := adaptertest.Serve(t, Kind(), appURL, mount)
	return srv, logs
}

func startApp(t *testing.T, tcp bool) (*testpeer.UWSGIPeer, string) {
	t.Helper()
	app, err := filepath.Abs("testdata/app.py")
	if err != nil {
		t.Fatal(err)
	}
	p := testpeer.StartUWSGI(t, testpeer.UWSGI{TCP: tcp, App: []string{"--wsgi-file", app}})
	if tcp {
		return p, "uwsgi://" + p.Addr
	}
	return p, "uwsgi+unix://" + p.Addr
}

func getReport(t *testing.T, req *http.Request) report {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("X-App") != "report" {
		t.Fatalf("status %d, headers %v: %s", resp.StatusCode, resp.Header, body)
	}
	var rep report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return rep
}

func TestEnvironAgainstUWSGI(t *testing.T) {
	_, unixURL := startApp(t, false)
	_, tcpURL := startApp(t, true)
	tests := []struct {
		name   string
		app    string
		mount  string
		path   string
		header map[string]string
		check  func(t *testing.T, base string, r report)
	}{
		{name: "a mounted app sees the mount as SCRIPT_NAME and the rest as PATH_INFO", app: unixURL + "?param.X_SITE=blue", mount: "/app", path: "/app/hello/world?x=1&y=%2F",
			check: func(t *testing.T, base string, r report) {
				want := report{ScriptName: "/app", PathInfo: "/hello/world", QueryString: "x=1&y=%2F", RequestURI: "/app/hello/world?x=1&y=%2F", Method: "GET", URLScheme: "http",
					ApplicationURI: base + "/app", RequestURL: base + "/app/hello/world?x=1&y=%2F"}
				if r.ScriptName != want.ScriptName || r.PathInfo != want.PathInfo || r.QueryString != want.QueryString || r.RequestURI != want.RequestURI ||
					r.Method != want.Method || r.URLScheme != want.URLScheme || r.ApplicationURI != want.ApplicationURI || r.RequestURL != want.RequestURL {
					t.Errorf("got %+v\nwant %+v", r, want)
				}
				if r.Vars["X_SITE"] != "blue" {
					t.Errorf("configured param X_SITE = %q, want blue", r.Vars["X_SITE"])
				}
			}},
		{name: "the mount itself has an empty PATH_INFO", app: tcpURL, mount: "/app", path: "/app",
			check: func(t *testing.T, base string, r report) {
				if r.ScriptName != "/app" || r.PathInfo != "" || r.ApplicationURI != base+"/app" {
					t.Errorf("got %+v", r)
				}
			}},
		{name: "an app at the root has an empty SCRIPT_NAME", app: tcpURL, path: "/x/y",
			check: func(t *testing.T, base string, r report) {
				if r.ScriptName != "" || r.PathInfo != "/x/y" || r.RequestURL != base+"/x/y" {
					t.Errorf("got %+v", r)
				}
			}},
		{name: "a client Script-Name header does not change SCRIPT_NAME", app: unixURL, mount: "/app", path: "/app/p",
			header: map[string]string{"Script-Name": "/evil", "Script_Name": "/evil2"},
			check: func(t *testing.T, base string, r report) {
				if r.ScriptName != "/app" || r.ApplicationURI != base+"/app" {
					t.Errorf("SCRIPT_NAME = %q, application_uri = %q", r.ScriptName, r.ApplicationURI)
				}
				if r.Vars["HTTP_SCRIPT_NAME"] != "/evil" {
					t.Errorf("the header should arrive only as HTTP_SCRIPT_NAME, vars %v", r.Vars)
				}
			}},
		{name: "client headers cannot set UWSGI variables", app: unixURL, mount: "/app", path: "/app/p",
			header: map[string]string{"UWSGI_SCRIPT": "evil:app", "Uwsgi-Chdir": "/tmp", "UWSGI_SCHEME": "https"},
			check: func(t *testing.T, base string, r report) {
				for k, v := range r.Vars {
					if strings.HasPrefix(k, "UWSGI_") && k != "UWSGI_SCHEME" {
						t.Errorf("request data set %s=%q", k, v)
					}
				}
				if r.Vars["UWSGI_SCHEME"] != "http" || r.URLScheme != "http" {
					t.Errorf("UWSGI_SCHEME = %q, url_scheme %q", r.Vars["UWSGI_SCHEME"], r.URLScheme)
				}
			}},
		{name: "https from a trusted proxy reaches wsgi.url_scheme and the URLs the app builds", app: unixURL, mount: "/app", path: "/app/secure",
			header: map[string]string{"X-Forwarded-Proto": "https"},
			check: func(t *testing.T, base string, r report) {
				if r.URLScheme != "https" || !strings.HasPrefix(r.ApplicationURI, "https://") || !strings.HasSuffix(r.ApplicationURI, "/app") {
					t.Errorf("url_scheme %q, application_uri %q", r.URLScheme, r.ApplicationURI)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := gateway(t, tt.app, tt.mount)
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			for k, v := range tt.header {
				req.Header[k] = []string{v}
			}
			tt.check(t, srv.URL, getReport(t, req))
		})
	}
}

// unknownLength hides a reader's length so the client sends it chunked.
type unknownLength struct{ io.Reader }

func TestRequestBodiesAgainstUWSGI(t *testing.T) {
	_, app := startApp(t, false)
	srv, _ := gateway(t, app, "/app")
	random := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	tests := []struct {
		name    string
		body    []byte
		chunked bool
	}{
		{name: "a 1 MiB body of known length arrives byte for byte", body: random(1 << 20)},
		{name: "a small chunked body is spooled in memory and sent with its length", body: []byte("hello chunked world"), chunked: true},
		{name: "a 3 MiB chunked body spills to a temp file and arrives byte for byte", body: random(3 << 20), chunked: true},
		{name: "an empty chunked body arrives as an empty body", body: []byte{}, chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tt.body)
			if tt.chunked {
				body = unknownLength{body}
			}
			req, _ := http.NewRequest("POST", srv.URL+"/app/upload", body)
			if tt.chunked {
				req.ContentLength = -1 // unknown: the client sends it chunked
			}
			r := getReport(t, req)
			sum := sha256.Sum256(tt.body)
			if r.BodyLen != len(tt.body) || r.BodySHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("app got %d bytes (sha %s), want %d", r.BodyLen, r.BodySHA256, len(tt.body))
			}
		})
	}
}

// streamClient bounds the streaming tests, so a gate that is never released fails the test instead of
// hanging it.
var streamClient = &http.Client{Timeout: 30 * time.Second}

// gate is a FIFO the test app blocks on (reading to EOF) until release closes the test's end. The test
// holds the FIFO open read-write from the start, so neither side ever blocks in open.
func gate(t *testing.T) (path string, release func()) {
	path = filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { f.Close() }) }
	t.Cleanup(release) // never leave the app blocked
	return path, release
}

func TestStreamingAgainstUWSGI(t *testing.T) {
	peer, app := startApp(t, false)
	srv, logs := gateway(t, app, "")

	t.Run("the first chunk arrives before the app sends the last one", func(t *testing.T) {
		g, release := gate(t)
		resp, err := streamClient.Get(srv.URL + "/stream?n=3&gate=" + g)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil || first != "chunk-0\n" {
			t.Fatalf("first chunk %q, %v", first, err)
		}
		release() // only now may the app send the rest
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "chunk-1\nchunk-2\n" {
			t.Fatalf("rest %q, %v", rest, err)
		}
	})

	t.Run("an app killed mid-stream gives the client an aborted response", func(t *testing.T) {
		g, _ := gate(t)
		resp, err := streamClient.Get(srv.URL + "/stream?n=3&declare=1&gate=" + g)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if first, err := br.ReadString('\n'); err != nil || first != "chunk-0\n" {
			t.Fatalf("first chunk %q, %v", first, err)
		}
		peer.Kill()
		rest, err := io.ReadAll(br)
		if err == nil {
			t.Fatalf("the truncated response looked complete (rest %q)", rest)
		}
		if !strings.Contains(logs.String(), "response aborted") {
			t.Errorf("no log line for the abort:\n%s", logs.String())
		}
	})
}

func TestFailuresAgainstUWSGI(t *testing.T) {
	_, app := startApp(t, false)
	tests := []struct {
		name    string
		app     string
		path    string
		header  http.Header
		status  int
		logHas  string
		timeout time.Duration
	}{
		{name: "an absent socket answers 502", app: "uwsgi+unix://" + filepath.Join(t.TempDir(), "none.sock"), path: "/", status: 502, logHas: "connecting"},
		{name: "a refused TCP port answers 502", app: "uwsgi://" + testpeer.FreePort(t), path: "/", status: 502, logHas: "connecting"},
		{name: "an app slower than the timeout answers 504", app: app + "?timeout=300ms", path: "/slow?s=3", status: 504, logHas: "reading the response head"},
		{name: "variables over 64 KiB answer 431", app: app, path: "/", header: http.Header{"X-Big": {strings.Repeat("a", 70000)}}, status: 431, logHas: "too large"},
		{name: "large variables that fit the block and uWSGI's buffer pass", app: app, path: "/", header: http.Header{"X-Big": {strings.Repeat("a", 60000)}}, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, logs := gateway(t, tt.app, "")
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			for k, v := range tt.header {
				req.Header[k] = v
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			// The 504 is the app's short timeout, not the 60 s default (a generous bound, no speed target).
			if tt.status == 504 && time.Since(start) > 20*time.Second {
				t.Errorf("504 took %v: not the app's timeout option", time.Since(start))
			}
			if tt.logHas != "" {
				l := logs.String()
				if !strings.Contains(l, tt.logHas) || !strings.Contains(l, "app=") || !strings.Contains(l, "upstream=") {
					t.Errorf("log lacks %q, app and upstream:\n%s", tt.logHas, l)
				}
			}
		})
	}
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
		{name: "hop-by-hop headers are dropped and 100 Continue skipped", status: 201, body: "ok",
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
