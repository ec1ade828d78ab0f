package scgi

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// report is what ../uwsgi/testdata/app.py answers for ordinary requests.
type report struct {
	ScriptName     string            `json:"SCRIPT_NAME"`
	PathInfo       string            `json:"PATH_INFO"`
	RequestURI     string            `json:"REQUEST_URI"`
	URLScheme      string            `json:"wsgi.url_scheme"`
	Vars           map[string]string `json:"vars"`
	BodyLen        int               `json:"body_len"`
	BodySHA256     string            `json:"body_sha256"`
	ApplicationURI string            `json:"application_uri"`
	RequestURL     string            `json:"request_uri"`
}

type logBuffer = adaptertest.LogBuffer

func gateway(t *testing.T, appURL, mount string) (*httptest.Server, *logBuffer) {
	t.Helper()
	_, srv, logs := adaptertest.Serve(t, Kind(), appURL, mount)
	return srv, logs
}

// startApp runs the uwsgi package's WSGI test app in a real uWSGI listening with --scgi-socket.
func startApp(t *testing.T, tcp bool) (*testpeer.UWSGIPeer, string) {
	t.Helper()
	app, err := filepath.Abs("../uwsgi/testdata/app.py")
	if err != nil {
		t.Fatal(err)
	}
	p := testpeer.StartUWSGI(t, testpeer.UWSGI{Socket: "scgi", TCP: tcp, App: []string{"--wsgi-file", app}})
	if tcp {
		return p, "scgi://" + p.Addr
	}
	return p, "scgi+unix://" + p.Addr
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

// unknownLength hides a reader's length so the client sends it chunked.
type unknownLength struct{ io.Reader }

func TestAgainstUWSGIOverSCGI(t *testing.T) {
	_, unixURL := startApp(t, false)
	_, tcpURL := startApp(t, true)
	random := make([]byte, 1<<20)
	rand.Read(random)
	tests := []struct {
		name    string
		app     string
		mount   string
		path    string
		header  map[string]string
		body    []byte
		chunked bool
		check   func(t *testing.T, base string, r report)
	}{
		{name: "a mounted app sees the mount as SCRIPT_NAME and builds URLs under it", app: unixURL + "?param.X_SITE=green", mount: "/app", path: "/app/a/b?q=1",
			check: func(t *testing.T, base string, r report) {
				if r.ScriptName != "/app" || r.PathInfo != "/a/b" || r.RequestURI != "/app/a/b?q=1" || r.URLScheme != "http" ||
					r.ApplicationURI != base+"/app" || r.RequestURL != base+"/app/a/b?q=1" || r.Vars["X_SITE"] != "green" {
					t.Errorf("got %+v", r)
				}
			}},
		{name: "an app at the root over TCP has an empty SCRIPT_NAME", app: tcpURL, path: "/x",
			check: func(t *testing.T, base string, r report) {
				if r.ScriptName != "" || r.PathInfo != "/x" {
					t.Errorf("got %+v", r)
				}
			}},
		{name: "client headers cannot set SCRIPT_NAME or UWSGI variables", app: unixURL, mount: "/app", path: "/app/p",
			header: map[string]string{"Script-Name": "/evil", "Script_Name": "/evil2", "UWSGI_SCRIPT": "evil:app", "Scgi": "2"},
			check: func(t *testing.T, base string, r report) {
				if r.ScriptName != "/app" || r.ApplicationURI != base+"/app" {
					t.Errorf("SCRIPT_NAME %q, application_uri %q", r.ScriptName, r.ApplicationURI)
				}
				for k := range r.Vars {
					if strings.HasPrefix(k, "UWSGI_") {
						t.Errorf("request data set %s", k)
					}
				}
			}},
		{name: "a 1 MiB body of known length arrives byte for byte", app: unixURL, path: "/up", body: random},
		{name: "a chunked body arrives byte for byte with its length", app: unixURL, path: "/up", body: random[:300000], chunked: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := gateway(t, tt.app, tt.mount)
			var body io.Reader
			method := "GET"
			if tt.body != nil {
				method, body = "POST", bytes.NewReader(tt.body)
				if tt.chunked {
					body = unknownLength{body}
				}
			}
			req, _ := http.NewRequest(method, srv.URL+tt.path, body)
			if tt.chunked {
				req.ContentLength = -1
			}
			for k, v := range tt.header {
				req.Header[k] = []string{v}
			}
			r := getReport(t, req)
			if tt.body != nil {
				sum := sha256.Sum256(tt.body)
				if r.BodyLen != len(tt.body) || r.BodySHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("app got %d bytes, want %d", r.BodyLen, len(tt.body))
				}
			}
			if tt.check != nil {
				tt.check(t, srv.URL, r)
			}
		})
	}
}

// streamClient bounds the streaming tests, so a gate that is never released fails the test instead of
// hanging it.
var streamClient = &http.Client{Timeout: 30 * time.Second}

// gate is a FIFO the test app blocks on until release closes the test's end.
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
	t.Cleanup(release)
	return path, release
}

func TestStreamingOverSCGI(t *testing.T) {
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
		if first, err := br.ReadString('\n'); err != nil || first != "chunk-0\n" {
			t.Fatalf("first chunk %q, %v", first, err)
		}
		release()
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
		if rest, err := io.ReadAll(br); err == nil {
			t.Fatalf("the truncated response looked complete (rest %q)", rest)
		}
		if !strings.Contains(logs.String(), "response aborted") {
			t.Errorf("no log line for the abort:\n%s", logs.String())
		}
	})
}

func TestFailuresOverSCGI(t *testing.T) {
	_, app := startApp(t, false)
	tests := []struct {
		name   string
		app    string
		path   string
		status int
		logHas string
	}{
		{name: "an absent socket answers 502", app: "scgi+unix://" + filepath.Join(t.TempDir(), "none.sock"), path: "/", status: 502, logHas: "connecting"},
		{name: "an app slower than the timeout answers 504", app: app + "?timeout=300ms", path: "/slow?s=3", status: 504, logHas: "reading the response head"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, logs := gateway(t, tt.app, "")
			resp, err := http.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if l := logs.String(); !strings.Contains(l, tt.logHas) || !strings.Contains(l, "upstream=") {
				t.Errorf("log lacks %q:\n%s", tt.logHas, l)
			}
		})
	}
}

// fakeSCGI serves each connection on a unix socket with serve after parsing the request header.
func fakeSCGI(t *testing.T, serve func(c net.Conn, vars map[string]string, body io.Reader)) string {
	t.Helper()
	return "scgi+unix://" + testpeer.ServeUnix(t, "fake.sock", func(c net.Conn) {
		br := bufio.NewReader(c)
		vars, err := ReadRequest(br, 1<<20)
		if err != nil {
			t.Errorf("bad request header: %v", err)
			return
		}
		m := map[string]string{}
		for _, v := range vars {
			m[v.Name] = v.Value
		}
		serve(c, m, br)
		// Read what is left of the body before closing: closing a unix socket with unread data
		// resets it, and the gateway's read of the answer would fail with ECONNRESET at random.
		// The write side is closed first so an answer delimited by the close ends now.
		c.(*net.UnixConn).CloseWrite()
		if n, err := strconv.ParseInt(m["CONTENT_LENGTH"], 10, 64); err == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, io.LimitReader(br, n))
		}
	})
}

func TestAgainstAFakeSCGIServer(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		serve     func(c net.Conn, vars map[string]string, body io.Reader)
		status    int
		body      string
		header    map[string]string
		truncated bool
		opts      string
	}{
		{name: "a CGI-style head over the 256 KiB default answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				for i := 0; i < 300; i++ {
					if _, err := fmt.Fprintf(c, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 1000)); err != nil {
						return // the gateway gave up reading, as it should
					}
				}
				io.WriteString(c, "\r\nok")
			}},
		{name: "an HTTP head over the 256 KiB default answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
				for i := 0; i < 300; i++ {
					if _, err := fmt.Fprintf(c, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 1000)); err != nil {
						return
					}
				}
				io.WriteString(c, "\r\nok")
			}},
		{name: "a CGI body stalling past read_timeout aborts the response", status: 200, truncated: true, opts: "?read_timeout=200ms",
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Content-Type: text/plain\r\n\r\nfirst")
				io.Copy(io.Discard, c) // silent until the gateway closes the connection
			}},
		{name: "a CGI-style head with Status sets the status and headers", status: 404, body: "nope", header: map[string]string{"X-A": "1"},
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Status: 404 Not Found\r\nX-A: 1\r\nContent-Type: text/plain\r\n\r\nnope")
			}},
		{name: "an HTTP status line head is read as HTTP", status: 201, body: "made",
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nmade")
			}},
		{name: "a CGI body shorter than its Content-Length aborts the response", status: 200, truncated: true,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Content-Length: 10\r\n\r\nshort")
			}},
		{name: "a CGI body longer than its Content-Length is cut at the length", status: 200, body: "exact",
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Content-Length: 5\r\n\r\nexactly too much")
			}},
		{name: "garbage instead of a head answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) { io.WriteString(c, "\x00\x01 garbage\r\n\r\n") }},
		{name: "a connection closed without an answer answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {}},
		{name: "CONTENT_LENGTH comes first, SCGI=1 is sent and the body follows", status: 200, body: "CL=5 SCGI=1 body=hello",
			serve: func(c net.Conn, vars map[string]string, body io.Reader) {
				b := make([]byte, 5)
				io.ReadFull(body, b)
				io.WriteString(c, "Content-Type: text/plain\n\nCL="+vars["CONTENT_LENGTH"]+" SCGI="+vars["SCGI"]+" body="+string(b))
			}},
		{name: "a HEAD answer keeps its length and sends no body", method: "HEAD", status: 200, header: map[string]string{"Content-Length": "7"},
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) { io.WriteString(c, "Content-Length: 7\r\n\r\n") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := gateway(t, fakeSCGI(t, tt.serve)+tt.opts, "")
			method := tt.method
			var body io.Reader
			if method == "" {
				method, body = "POST", strings.NewReader("hello")
			}
			req, _ := http.NewRequest(method, srv.URL+"/", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, got)
			}
			if tt.truncated {
				if err == nil {
					t.Fatalf("truncated body %q looked complete", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" && string(got) != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			for k, v := range tt.header {
				if resp.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
		})
	}
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name string
		app  string
		ok   bool
	}{
		{name: "a TCP address with a port is accepted", app: "scgi://127.0.0.1:4000", ok: true},
		{name: "a unix socket with options is accepted", app: "scgi+unix:///run/a.sock?timeout=1s&read_timeout=2s&dial_timeout=1s&param.X=y", ok: true},
		{name: "a configured SCGI variable is refused", app: "scgi://h:1?param.SCGI=2"},
		{name: "a configured CONTENT_LENGTH is refused", app: "scgi://h:1?param.CONTENT_LENGTH=2"},
		{name: "a configured value with a NUL is refused", app: "scgi://h:1?param.X=a%00b"},
		{name: "the uwsgi-only modifier1 option is refused", app: "scgi://h:1?modifier1=1"},
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
