package testpeer_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// These tests run each example application under its real server, talking to it directly (no gateway):
// they prove the examples the end-to-end tests build on really work.

// client returns an HTTP client for a peer: over the unix socket when sock is set, else over TCP. Every
// request carries the test's deadline.
func client(t *testing.T, sock string, jar http.CookieJar) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	if sock != "" {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 60 * time.Second}
}

func do(t *testing.T, c *http.Client, method, u string, header http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(testpeer.Context(t), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	return resp, b
}

// getJSON GETs u and decodes a 200 JSON answer, keeping only the wanted keys so cmp can compare.
func getJSON(t *testing.T, c *http.Client, u string, header http.Header, keys ...string) map[string]any {
	t.Helper()
	resp, body := do(t, c, http.MethodGet, u, header, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200:\n%s", u, resp.StatusCode, body)
	}
	var all map[string]any
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatalf("GET %s: not JSON (%v):\n%s", u, err, body)
	}
	got := map[string]any{}
	for _, k := range keys {
		got[k] = all[k]
	}
	return got
}

// checkStreamed GETs a streaming endpoint that sends lines with a server-side delay between them and checks
// the first line arrived well before the end: a server or client that buffered the body would deliver all
// lines at once. The lower bound comes from the server's own sleeps, so it cannot flake on a slow machine.
func checkStreamed(t *testing.T, c *http.Client, u string, lines int, minGap time.Duration) {
	t.Helper()
	req, err := http.NewRequestWithContext(testpeer.Context(t), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	first, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v", err)
	}
	firstAt := time.Now()
	if want := fmt.Sprintf("chunk 1 of %d\n", lines); first != want {
		t.Errorf("first line %q, want %q", first, want)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("rest: %v", err)
	}
	if gap := time.Since(firstAt); gap < minGap {
		t.Errorf("rest of the stream came %v after the first line, want >= %v: the body was buffered", gap, minGap)
	}
	if n := strings.Count(first+string(rest), "\n"); n != lines {
		t.Errorf("got %d lines, want %d:\n%s%s", n, lines, first, rest)
	}
}

func TestDjangoUnderGunicornOverAUnixSocket(t *testing.T) {
	dir := testpeer.DjangoProject(t)
	staticRoot := testpeer.CollectStatic(t, dir)
	sock := testpeer.SocketPath(t, "dj.sock")
	testpeer.StartGunicorn(t, dir, "mysite.wsgi", "unix:"+sock, "DJANGO_STATIC_ROOT="+staticRoot)
	const base = "http://django.test"

	hashed, err := filepath.Glob(filepath.Join(staticRoot, "shop", "site.*.css"))
	if err != nil || len(hashed) != 1 {
		t.Fatalf("collectstatic made %v (%v), want one hashed site.<hash>.css", hashed, err)
	}
	css := "static/shop/" + filepath.Base(hashed[0])
	if !regexp.MustCompile(`^static/shop/site\.[0-9a-f]{12}\.css$`).MatchString(css) {
		t.Fatalf("hashed name %q does not look like ManifestStaticFilesStorage output", css)
	}

	t.Run("the JSON index reports the URLs Django builds", func(t *testing.T) {
		keys := []string{"reverse_index", "reverse_form", "absolute_uri", "absolute_form", "script_name",
			"path_info", "path", "host", "scheme", "static_css"}
		tests := []struct {
			name   string
			path   string
			header http.Header
			want   map[string]any
		}{
			{
				name: "at the root without forwarding headers",
				path: "/",
				want: map[string]any{
					"reverse_index": "/", "reverse_form": "/form/", "absolute_uri": "http://django.test/",
					"absolute_form": "http://django.test/form/", "script_name": "", "path_info": "/", "path": "/",
					"host": "django.test", "scheme": "http", "static_css": "/" + css,
				},
			},
			{
				name: "behind a proxy sending X-Forwarded-Prefix, -Proto and -Host",
				path: "/?q=1",
				header: http.Header{"X-Forwarded-Prefix": {"/django"}, "X-Forwarded-Proto": {"https"},
					"X-Forwarded-Host": {"gw.example"}},
				want: map[string]any{
					"reverse_index": "/django/", "reverse_form": "/django/form/",
					"absolute_uri": "https://gw.example/django/?q=1", "absolute_form": "https://gw.example/django/form/",
					"script_name": "/django", "path_info": "/", "path": "/django/", "host": "gw.example",
					"scheme": "https", "static_css": "/django/" + css,
				},
			},
			{
				name:   "with a prefix again after a request without one (static links are per request)",
				path:   "/",
				header: http.Header{"X-Forwarded-Prefix": {"/shop2/"}},
				want: map[string]any{
					"reverse_index": "/shop2/", "reverse_form": "/shop2/form/", "absolute_uri": "http://django.test/shop2/",
					"absolute_form": "http://django.test/shop2/form/", "script_name": "/shop2", "path_info": "/",
					"path": "/shop2/", "host": "django.test", "scheme": "http", "static_css": "/shop2/" + css,
				},
			},
		}
		c := client(t, sock, nil)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := getJSON(t, c, base+tt.path, tt.header, keys...)
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("GET %s (-want +got):\n%s", tt.path, diff)
				}
			})
		}
	})

	t.Run("the template page links with url and static tags", func(t *testing.T) {
		c := client(t, sock, nil)
		resp, body := do(t, c, http.MethodGet, base+"/page/", http.Header{"X-Forwarded-Prefix": {"/django"}}, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d:\n%s", resp.StatusCode, body)
		}
		for _, want := range []string{`href="/django/` + css + `"`, `id="link-form" href="/django/form/"`, `action="/django/upload/"`} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("page lacks %s:\n%s", want, body)
			}
		}
	})

	t.Run("the form is protected by CSRF", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		if err != nil {
			t.Fatal(err)
		}
		withJar := client(t, sock, jar)
		resp, body := do(t, withJar, http.MethodGet, base+"/form/", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /form/: status %d:\n%s", resp.StatusCode, body)
		}
		m := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("GET /form/: no csrf token field:\n%s", body)
		}
		token := string(m[1])
		u, _ := url.Parse(base)
		if len(jar.Cookies(u)) == 0 {
			t.Fatal("GET /form/ set no csrftoken cookie")
		}
		form := func(withToken bool) io.Reader {
			v := url.Values{"name": {"Ada"}, "quantity": {"3"}}
			if withToken {
				v.Set("csrfmiddlewaretoken", token)
			}
			return strings.NewReader(v.Encode())
		}
		formHeader := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		tests := []struct {
			name      string
			client    *http.Client
			withToken bool
			want      int
		}{
			{"a post with the token and its cookie is accepted", withJar, true, http.StatusOK},
			{"a post with the cookie but no token is refused", withJar, false, http.StatusForbidden},
			{"a post with the token but no cookie is refused", client(t, sock, nil), true, http.StatusForbidden},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, body := do(t, tt.client, http.MethodPost, base+"/form/", formHeader, form(tt.withToken))
				if resp.StatusCode != tt.want {
					t.Fatalf("status %d, want %d:\n%s", resp.StatusCode, tt.want, body)
				}
				if tt.want != http.StatusOK {
					return
				}
				var got struct{ Posted map[string]string }
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, body)
				}
				if diff := cmp.Diff(map[string]string{"name": "Ada", "quantity": "3"}, got.Posted); diff != "" {
					t.Errorf("posted (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("uploads", func(t *testing.T) {
		const size = 20 << 20
		data := make([]byte, size)
		rand.NewChaCha8([32]byte{1}).Read(data)
		sum := sha256.Sum256(data)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		part, err := mw.CreateFormFile("file", "big.bin")
		if err != nil {
			t.Fatal(err)
		}
		part.Write(data)
		if err := mw.Close(); err != nil {
			t.Fatal(err)
		}
		type answer struct {
			Name          string
			Size          int
			SHA256        string
			SpooledToDisk bool `json:"spooled_to_disk"`
			Error         string
		}
		tests := []struct {
			name string
			// chunked hides the length: Go then sends Transfer-Encoding: chunked.
			chunked    bool
			wantStatus int
			want       answer
		}{
			{
				name:       "a 20 MB upload with Content-Length arrives intact and is spooled to disk",
				wantStatus: http.StatusOK,
				want:       answer{Name: "big.bin", Size: size, SHA256: hex.EncodeToString(sum[:]), SpooledToDisk: true},
			},
			{
				// Django reads CONTENT_LENGTH only; gunicorn passes a chunked body without one, so the
				// multipart parser sees nothing. A gateway must give WSGI apps a length (spool first).
				name:       "a chunked upload reaches Django as an empty form",
				chunked:    true,
				wantStatus: http.StatusBadRequest,
				want:       answer{Error: `no multipart field "file"`},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var r io.Reader = bytes.NewReader(body.Bytes())
				if tt.chunked {
					r = io.MultiReader(r)
				}
				resp, b := do(t, client(t, sock, nil), http.MethodPost, base+"/upload/",
					http.Header{"Content-Type": {mw.FormDataContentType()}}, r)
				if resp.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d:\n%s", resp.StatusCode, tt.wantStatus, b)
				}
				var got answer
				if err := json.Unmarshal(b, &got); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, b)
				}
				if got != tt.want {
					t.Errorf("upload answer %+v, want %+v", got, tt.want)
				}
			})
		}
	})

	t.Run("the streaming view delivers chunks as they are produced", func(t *testing.T) {
		checkStreamed(t, client(t, sock, nil), base+"/stream/?n=3&delay=0.2", 3, 300*time.Millisecond)
	})
}

func TestDjangoUnderUWSGIOverHTTPSocket(t *testing.T) {
	dir := testpeer.DjangoProject(t)
	staticRoot := testpeer.CollectStatic(t, dir)
	peer := testpeer.StartUWSGI(t, testpeer.UWSGI{
		Socket: "http",
		Dir:    dir,
		App:    []string{"--module", "mysite.wsgi"},
		Env:    []string{"PYTHONDONTWRITEBYTECODE=1", "DJANGO_STATIC_ROOT=" + staticRoot},
	})
	sock := ""
	base := "http://" + peer.Addr
	if peer.Network == "unix" {
		sock, base = peer.Addr, "http://django.test"
	}
	c := client(t, sock, nil)

	t.Run("the JSON index answers with reverse() results", func(t *testing.T) {
		got := getJSON(t, c, base+"/", http.Header{"X-Forwarded-Prefix": {"/dj"}}, "reverse_form", "script_name")
		if diff := cmp.Diff(map[string]any{"reverse_form": "/dj/form/", "script_name": "/dj"}, got); diff != "" {
			t.Errorf("GET / (-want +got):\n%s", diff)
		}
	})
	t.Run("an upload arrives intact", func(t *testing.T) {
		data := bytes.Repeat([]byte("switchyard "), 300_000) // 3.3 MB: past the in-memory threshold
		sum := sha256.Sum256(data)
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		part, err := mw.CreateFormFile("file", "words.txt")
		if err != nil {
			t.Fatal(err)
		}
		part.Write(data)
		mw.Close()
		resp, b := do(t, c, http.MethodPost, base+"/upload/", http.Header{"Content-Type": {mw.FormDataContentType()}}, &body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d:\n%s", resp.StatusCode, b)
		}
		if want := `"sha256": "` + hex.EncodeToString(sum[:]) + `"`; !strings.Contains(string(b), want) {
			t.Errorf("answer %s lacks %s", b, want)
		}
	})
	t.Run("the streaming view delivers chunks as they are produced", func(t *testing.T) {
		checkStreamed(t, c, base+"/stream/?n=3&delay=0.2", 3, 300*time.Millisecond)
	})
}

func TestFlaskUnderGunicornOverTCP(t *testing.T) {
	dir := testpeer.FlaskApp(t)
	addr := testpeer.FreePort(t)
	testpeer.StartGunicorn(t, dir, "app:app", addr)
	base := "http://" + addr
	c := client(t, "", nil)

	keys := []string{"url_for_index", "url_for_hello", "url_for_hello_external", "script_root", "path", "scheme"}
	tests := []struct {
		name   string
		header http.Header
		want   map[string]any
	}{
		{
			name: "at the root without forwarding headers",
			want: map[string]any{
				"url_for_index": "/", "url_for_hello": "/hello/world", "url_for_hello_external": base + "/hello/world",
				"script_root": "", "path": "/", "scheme": "http",
			},
		},
		{
			name: "ProxyFix applies X-Forwarded-Prefix, -Proto and -Host to url_for",
			header: http.Header{"X-Forwarded-Prefix": {"/flask"}, "X-Forwarded-Proto": {"https"},
				"X-Forwarded-Host": {"gw.example"}},
			want: map[string]any{
				"url_for_index": "/flask/", "url_for_hello": "/flask/hello/world",
				"url_for_hello_external": "https://gw.example/flask/hello/world",
				"script_root":            "/flask", "path": "/", "scheme": "https",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := getJSON(t, c, base+"/", tt.header, keys...)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("GET / (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("the other route answers", func(t *testing.T) {
		got := getJSON(t, c, base+"/hello/ada", nil, "hello", "self")
		if diff := cmp.Diff(map[string]any{"hello": "ada", "self": "/hello/ada"}, got); diff != "" {
			t.Errorf("GET /hello/ada (-want +got):\n%s", diff)
		}
	})
	t.Run("the streaming route delivers chunks as they are produced", func(t *testing.T) {
		checkStreamed(t, c, base+"/stream?n=3&delay=0.2", 3, 300*time.Millisecond)
	})
}

func TestNodeExample(t *testing.T) {
	tests := []struct {
		name string
		// listen returns what StartNode takes and the unix socket to dial ("" for TCP) with the base URL.
		listen func(t *testing.T) (arg, sock, base string)
	}{
		{"over a unix socket", func(t *testing.T) (string, string, string) {
			s := testpeer.SocketPath(t, "node.sock")
			return s, s, "http://node.test"
		}},
		{"over loopback TCP", func(t *testing.T) (string, string, string) {
			a := testpeer.FreePort(t)
			return a, "", "http://" + a
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			arg, sock, base := tt.listen(t)
			testpeer.StartNode(t, arg)
			c := client(t, sock, nil)

			t.Run("the JSON index shows the URL and the forwarding headers", func(t *testing.T) {
				got := getJSON(t, c, base+"/a/b?c=1", http.Header{"X-Forwarded-Prefix": {"/node"},
					"X-Forwarded-Proto": {"https"}}, "originalUrl", "path", "forwarded")
				want := map[string]any{"originalUrl": "/a/b?c=1", "path": "/a/b", "forwarded": map[string]any{
					"x-forwarded-prefix": "/node", "x-forwarded-proto": "https"}}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("GET /a/b (-want +got):\n%s", diff)
				}
			})

			t.Run("the SSE stream sends its first event at once", func(t *testing.T) {
				req, err := http.NewRequestWithContext(testpeer.Context(t), http.MethodGet, base+"/events?n=50", nil)
				if err != nil {
					t.Fatal(err)
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Errorf("Content-Type %q, want text/event-stream", ct)
				}
				// Reading the first event while 49 more are still to come (about 5 s) shows it was not
				// held back until the end.
				r := bufio.NewReader(resp.Body)
				var event []string
				for len(event) < 10 {
					line, err := r.ReadString('\n')
					if err != nil {
						t.Fatalf("reading the first event: %v (so far %q)", err, event)
					}
					if line == "\n" {
						break
					}
					event = append(event, strings.TrimSuffix(line, "\n"))
				}
				if len(event) != 3 || event[0] != "id: 1" || event[1] != "event: tick" ||
					!strings.HasPrefix(event[2], `data: {"n":1,"of":50,`) {
					t.Errorf("first event %q, want id 1, event tick, data n=1 of 50", event)
				}
			})

			t.Run("the WebSocket endpoint echoes text and binary messages", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(testpeer.Context(t), 30*time.Second)
				defer cancel()
				wsURL := "ws" + strings.TrimPrefix(base, "http") + "/ws"
				conn, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: c})
				if err != nil {
					t.Fatalf("dial %s: %v", wsURL, err)
				}
				defer conn.CloseNow()
				for _, msg := range []struct {
					typ  websocket.MessageType
					data []byte
				}{
					{websocket.MessageText, []byte("hello, switchyard")},
					{websocket.MessageBinary, []byte{0, 1, 2, 0xff}},
				} {
					if err := conn.Write(ctx, msg.typ, msg.data); err != nil {
						t.Fatalf("write: %v", err)
					}
					typ, data, err := conn.Read(ctx)
					if err != nil {
						t.Fatalf("read: %v", err)
					}
					if typ != msg.typ || !bytes.Equal(data, msg.data) {
						t.Errorf("echo %v %q, want %v %q", typ, data, msg.typ, msg.data)
					}
				}
				if err := conn.Close(websocket.StatusNormalClosure, ""); err != nil {
					t.Errorf("close: %v", err)
				}
			})
		})
	}
}

// TestPHPEvilJPGIsATripwire checks the property gateway tests rely on: uploads/evil.jpg prints PWNED only
// when PHP executes it, and its bytes as served never contain that word.
func TestPHPEvilJPGIsATripwire(t *testing.T) {
	path := filepath.Join(testpeer.ExamplesDir(), "php", "uploads", "evil.jpg")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PWNED")) {
		t.Fatal("evil.jpg contains PWNED in its source: a test could not tell served from executed")
	}
	if !bytes.HasPrefix(raw, []byte{0xff, 0xd8, 0xff}) {
		t.Error("evil.jpg does not start with JPEG magic bytes")
	}
	php := testpeer.Need(t, "apt-get install php-cli (php-fpm brings it)", "php")[0]
	out := testpeer.Start(t, "", nil, php, path)
	<-out.Done()
	if !strings.Contains(out.Output(), "PWNED") {
		t.Errorf("php evil.jpg printed %q, want PWNED", out.Output())
	}
}
