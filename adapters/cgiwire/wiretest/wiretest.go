// Package wiretest is the conformance suite the cgiwire-based adapters (uwsgi, scgi) share: the same
// requests, answered by a real uWSGI serving testdata/app.py on the listener that speaks the adapter's
// protocol (--socket or --scgi-socket), checked the same way. An adapter's tests call Run with a Kind that
// says which schemes to use, which uWSGI listener to start and what only that protocol carries; the
// checks that are the protocol's alone (packet or netstring encoding, fake servers speaking the raw
// protocol) stay in the adapter's package.
//
// Run needs uwsgi with the python3 plugin (see testpeer.NeedUWSGI): without it the suite is skipped, or
// fails when SWITCHYARD_REQUIRE_PEERS=1.
package wiretest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
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

// Kind describes the adapter under test and what its protocol alone does.
type Kind struct {
	// Adapter is the adapter's registry kind (uwsgi.Kind(), scgi.Kind()).
	Adapter adapters.Kind
	// Scheme is the TCP scheme: apps are Scheme://host:port and Scheme+unix:///path.sock.
	Scheme string
	// Socket is the uWSGI listener speaking the protocol, as testpeer.UWSGI.Socket ("uwsgi", "scgi").
	Socket string
	// SchemeVar names the variable the adapter sends to carry the request's scheme (UWSGI_SCHEME), or is
	// "" when the protocol has none. It is the only UWSGI_ variable the app may see.
	SchemeVar string
	// VarsLimit is true when the protocol frames the variables in a 64 KiB block, so variables over it
	// answer 431 Request Header Fields Too Large.
	VarsLimit bool
}

// Run runs the whole suite against a real uWSGI for k, one subtest per group.
func Run(t *testing.T, k Kind) {
	t.Run("environ", func(t *testing.T) { environ(t, k) })
	t.Run("request bodies", func(t *testing.T) { requestBodies(t, k) })
	t.Run("streaming", func(t *testing.T) { streaming(t, k) })
	t.Run("failures", func(t *testing.T) { failures(t, k) })
}

// report is what testdata/app.py answers for ordinary requests.
type report struct {
	ScriptName     string            `json:"SCRIPT_NAME"`
	PathInfo       string            `json:"PATH_INFO"`
	QueryString    string            `json:"QUERY_STRING"`
	RequestURI     string            `json:"REQUEST_URI"`
	Method         string            `json:"REQUEST_METHOD"`
	URLScheme      string            `json:"wsgi.url_scheme"`
	Vars           map[string]string `json:"vars"`
	BodyLen        int               `json:"body_len"`
	BodySHA256     string            `json:"body_sha256"`
	ApplicationURI string            `json:"application_uri"`
	RequestURL     string            `json:"request_uri"`
}

// appPath is the absolute path of testdata/app.py, found from the repository root so the suite works from
// whichever package's directory the test runs in (and in the checkout under test, see testpeer.RepoRoot).
func appPath(t *testing.T) string {
	t.Helper()
	app := filepath.Join(testpeer.RepoRoot(), "adapters", "cgiwire", "wiretest", "testdata", "app.py")
	if _, err := os.Stat(app); err != nil {
		t.Fatalf("wiretest: the test app: %v", err)
	}
	return app
}

// startApp runs testdata/app.py in a real uWSGI on k's listener, on a unix socket or a TCP port, and
// returns it with the app URL that reaches it.
func startApp(t *testing.T, k Kind, tcp bool) (*testpeer.UWSGIPeer, string) {
	t.Helper()
	p := testpeer.StartUWSGI(t, testpeer.UWSGI{Socket: k.Socket, TCP: tcp, App: []string{"--wsgi-file", appPath(t)}})
	if tcp {
		return p, k.Scheme + "://" + p.Addr
	}
	return p, k.Scheme + "+unix://" + p.Addr
}

// gateway serves the app at appURL mounted under mount through a registry, as the router would.
func gateway(t *testing.T, k Kind, appURL, mount string) (*httptest.Server, *adaptertest.LogBuffer) {
	t.Helper()
	_, srv, logs := adaptertest.Serve(t, k.Adapter, appURL, mount)
	return srv, logs
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

func environ(t *testing.T, k Kind) {
	_, unixURL := startApp(t, k, false)
	_, tcpURL := startApp(t, k, true)
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
		{name: "an app at the root over TCP has an empty SCRIPT_NAME", app: tcpURL, path: "/x/y",
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
			header: map[string]string{"UWSGI_SCRIPT": "evil:app", "Uwsgi-Chdir": "/tmp", "UWSGI_SCHEME": "https", "Scgi": "2"},
			check: func(t *testing.T, base string, r report) {
				for name, v := range r.Vars {
					if strings.HasPrefix(name, "UWSGI_") && name != k.SchemeVar {
						t.Errorf("request data set %s=%q", name, v)
					}
				}
				if k.SchemeVar != "" && r.Vars[k.SchemeVar] != "http" {
					t.Errorf("%s = %q, want http", k.SchemeVar, r.Vars[k.SchemeVar])
				}
				if r.URLScheme != "http" {
					t.Errorf("wsgi.url_scheme %q, want http", r.URLScheme)
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
			srv, _ := gateway(t, k, tt.app, tt.mount)
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			for name, v := range tt.header {
				req.Header[name] = []string{v}
			}
			tt.check(t, srv.URL, getReport(t, req))
		})
	}
}

// unknownLength hides a reader's length so the client sends it chunked.
type unknownLength struct{ io.Reader }

func requestBodies(t *testing.T, k Kind) {
	_, app := startApp(t, k, false)
	srv, _ := gateway(t, k, app, "/app")
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
		{name: "a 300 KB chunked body arrives byte for byte with its length", body: random(300000), chunked: true},
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

func streaming(t *testing.T, k Kind) {
	peer, app := startApp(t, k, false)
	srv, logs := gateway(t, k, app, "")

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

func failures(t *testing.T, k Kind) {
	_, app := startApp(t, k, false)
	type failure struct {
		name   string
		app    string
		path   string
		header http.Header
		status int
		logHas string
	}
	tests := []failure{
		{name: "an absent socket answers 502", app: k.Scheme + "+unix://" + filepath.Join(t.TempDir(), "none.sock"), path: "/", status: 502, logHas: "connecting"},
		{name: "a refused TCP port answers 502", app: k.Scheme + "://" + testpeer.FreePort(t), path: "/", status: 502, logHas: "connecting"},
		{name: "large variables that fit uWSGI's buffer pass", app: app, path: "/", header: http.Header{"X-Big": {strings.Repeat("a", 60000)}}, status: 200},
	}
	if k.VarsLimit {
		tests = append(tests, failure{name: "variables over 64 KiB answer 431", app: app, path: "/", header: http.Header{"X-Big": {strings.Repeat("a", 70000)}}, status: 431, logHas: "too large"})
	}
	// Last: the slow request keeps uWSGI's one process busy for seconds after the gateway gave up.
	tests = append(tests, failure{name: "an app slower than the timeout answers 504", app: app + "?timeout=300ms", path: "/slow?s=3", status: 504, logHas: "reading the response head"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, logs := gateway(t, k, tt.app, "")
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			for name, v := range tt.header {
				req.Header[name] = v
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
