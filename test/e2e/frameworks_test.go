package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/internal/testpeer"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

type stack struct {
	gw         *httptest.Server
	djangoPeer *testpeer.UWSGIPeer
	flaskPeer  *testpeer.Process
	logs       *logBuf
}

// startStack runs every real peer and one gateway in front of them all:
//
//	/          Django over the uwsgi protocol (the primary)
//	/shop/     the same Django project mounted under a prefix (SCRIPT_NAME=/shop)
//	/flask/    Flask under gunicorn on a unix socket (prefix stripped, X-Forwarded-Prefix)
//	/php/      PHP-FPM over FastCGI
//	/node/     Node (express + ws) on a unix socket (prefix stripped)
//	/static/   Django's collectstatic output as static files
func startStack(t *testing.T) *stack {
	t.Helper()
	django := testpeer.DjangoProject(t)
	flaskDir := testpeer.FlaskApp(t)
	staticRoot := testpeer.CollectStatic(t, django)
	phpRoot := filepath.Join(testpeer.ExamplesDir(), "php")

	djangoPeer := testpeer.StartUWSGI(t, testpeer.UWSGI{
		Dir:  django,
		App:  []string{"--module", "mysite.wsgi"},
		Args: []string{"--threads", "4"},
		Env:  []string{"PYTHONDONTWRITEBYTECODE=1", "DJANGO_STATIC_ROOT=" + staticRoot},
	})
	flaskSock := testpeer.SocketPath(t, "flask.sock")
	flaskPeer := testpeer.StartGunicorn(t, flaskDir, "app:app", "unix:"+flaskSock)
	fpmSock := testpeer.StartPHPFPM(t, phpRoot)
	nodeSock := testpeer.SocketPath(t, "node.sock")
	testpeer.StartNode(t, nodeSock)

	uw := "uwsgi+unix://" + djangoPeer.Addr
	routes := strings.Join([]string{
		"/shop/=" + uw,
		"/flask/=unix://" + flaskSock + "?strip_prefix=true",
		"/php/=fastcgi+unix://" + fpmSock + "?root=" + url.QueryEscape(phpRoot) + "&max_idle=1",
		"/node/=unix://" + nodeSock + "?strip_prefix=true",
		"/static/=file://" + staticRoot,
	}, ",")
	srv, _, logs := startGateway(t, map[string]string{
		"GATEWAY_PRIMARY":       uw,
		"GATEWAY_ROUTES":        routes,
		"GATEWAY_MAX_BODY_SIZE": "64MiB",
	})
	return &stack{gw: srv, djangoPeer: djangoPeer, flaskPeer: flaskPeer, logs: logs}
}

func getJSON(t *testing.T, c *http.Client, u string) (int, map[string]any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("GET %s: %d, not JSON: %q", u, resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func TestAllFrameworksBehindOneGateway(t *testing.T) {
	s := startStack(t)
	base := s.gw.URL
	host := strings.TrimPrefix(base, "http://")
	c := &http.Client{Timeout: 60 * time.Second}

	t.Run("each app builds correct URLs under its mount", func(t *testing.T) {
		cases := []struct {
			path string
			want map[string]string
		}{
			{"/", map[string]string{"app": "django", "reverse_form": "/form/", "script_name": ""}},
			{"/shop/", map[string]string{"app": "django", "reverse_index": "/shop/", "reverse_form": "/shop/form/",
				"absolute_form": "http://" + host + "/shop/form/", "script_name": "/shop", "path_info": "/"}},
			{"/flask/", map[string]string{"app": "flask", "url_for_index": "/flask/", "url_for_hello": "/flask/hello/world",
				"url_for_hello_external": "http://" + host + "/flask/hello/world"}},
			{"/php/index.php/extra/path?q=1", map[string]string{"app": "php", "SCRIPT_NAME": "/php/index.php", "PATH_INFO": "/extra/path",
				"REQUEST_URI": "/php/index.php/extra/path?q=1", "HTTP_HOST": host}},
			{"/node/some/where", map[string]string{"app": "node", "path": "/some/where"}},
		}
		for _, tc := range cases {
			status, m := getJSON(t, c, base+tc.path)
			if status != 200 {
				t.Errorf("GET %s: %d %v", tc.path, status, m)
				continue
			}
			for k, v := range tc.want {
				if fmt.Sprint(m[k]) != v {
					t.Errorf("GET %s: %s = %v, want %q", tc.path, k, m[k], v)
				}
			}
		}
	})

	t.Run("Django's {% url %} links carry the mount prefix", func(t *testing.T) {
		resp, err := c.Get(base + "/shop/page/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `href="/shop/form/"`) {
			t.Fatalf("page: %d\n%s", resp.StatusCode, b)
		}
		// The page's static link is a hashed name, served by the file adapter with long cache headers.
		m := regexp.MustCompile(`/static/shop/site\.[0-9a-f]{12}\.css`).FindString(string(b))
		if m == "" {
			t.Fatalf("no hashed static link in the page:\n%s", b)
		}
		st, err := c.Get(base + m)
		if err != nil {
			t.Fatal(err)
		}
		st.Body.Close()
		if st.StatusCode != 200 || !strings.Contains(st.Header.Get("Cache-Control"), "immutable") {
			t.Fatalf("static %s: %d %q", m, st.StatusCode, st.Header.Get("Cache-Control"))
		}
	})

	t.Run("a Django form POST with its CSRF token succeeds and one without is refused", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		cc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
		resp, err := cc.Get(base + "/shop/form/")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tok := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`).FindSubmatch(page)
		if tok == nil {
			t.Fatalf("no CSRF token in the form:\n%s", page)
		}
		post := func(form url.Values) (int, string) {
			r, err := cc.PostForm(base+"/shop/form/", form)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Body.Close()
			b, _ := io.ReadAll(r.Body)
			return r.StatusCode, string(b)
		}
		if code, body := post(url.Values{"csrfmiddlewaretoken": {string(tok[1])}, "name": {"Ann"}, "quantity": {"2"}}); code != 200 || !strings.Contains(body, `"name": "Ann"`) && !strings.Contains(body, `"name":"Ann"`) {
			t.Fatalf("POST with token: %d %s", code, body)
		}
		if code, _ := post(url.Values{"name": {"Mallory"}}); code != 403 {
			t.Fatalf("POST without token: %d, want 403", code)
		}
	})

	t.Run("a 20 MB multipart upload arrives intact at Django and PHP", func(t *testing.T) {
		data := make([]byte, 20<<20)
		rand.Read(data)
		sum := sha256.Sum256(data)
		want := hex.EncodeToString(sum[:])
		for _, path := range []string{"/shop/upload/", "/php/upload.php"} {
			var body bytes.Buffer
			mw := multipart.NewWriter(&body)
			fw, _ := mw.CreateFormFile("file", "big.bin")
			fw.Write(data)
			mw.Close()
			resp, err := c.Post(base+path, mw.FormDataContentType(), &body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
				t.Errorf("upload to %s: %d %s, want sha256 %s", path, resp.StatusCode, b, want)
			}
		}
	})

	t.Run("streamed responses arrive incrementally", func(t *testing.T) {
		for _, path := range []string{"/shop/stream/?n=4&delay=0.3", "/flask/stream?n=4&delay=0.3", "/node/events?n=4"} {
			resp, err := c.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			first := make([]byte, 64<<10)
			n, err := resp.Body.Read(first)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if n == 0 || len(rest) == 0 {
				t.Errorf("%s: first read %d bytes, then %d: the stream arrived in one piece", path, n, len(rest))
			}
		}
	})

	t.Run("a WebSocket to Node echoes through the gateway", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+host+"/node/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		ws.SetReadLimit(1 << 20)
		for _, msg := range []string{"hello", strings.Repeat("x", 100000)} {
			if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := ws.Read(ctx)
			if err != nil || string(got) != msg {
				t.Fatalf("echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
			}
		}
		ws.Close(websocket.StatusNormalClosure, "")
	})

	t.Run("the PHP attack paths are refused and the planted file never runs", func(t *testing.T) {
		for _, tc := range []struct {
			path   string
			status int
		}{
			{"/php/uploads/evil.jpg/x.php", 404},
			{"/php/uploads/evil.jpg%00.php", 400},
			{"/php/uploads/evil.jpg%0a.php", 400},
			{"/php/uploads/../uploads/evil.jpg/x.php", 404},
			{"/php/uploads/evil.jpg/.php", 0}, // no script named ".php": the front controller may answer
		} {
			req, _ := http.NewRequest("GET", base+"/", nil)
			req.URL.Opaque = tc.path // sent exactly as written
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "PWNED") {
				t.Fatalf("%s executed evil.jpg: %s", tc.path, b)
			}
			if tc.status != 0 && resp.StatusCode != tc.status {
				t.Errorf("%s: %d, want %d", tc.path, resp.StatusCode, tc.status)
			}
		}
	})

	// uWSGI ends a streamed body by closing the connection, so a kill there is indistinguishable from the
	// end; gunicorn streams chunked, where the gateway can and must tell the client the body is cut short.
	t.Run("an app killed mid-stream gives the client an error, never a hang or a clean end", func(t *testing.T) {
		resp, err := c.Get(base + "/flask/stream?n=50&delay=0.2")
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadByte(); err != nil {
			t.Fatalf("no first byte: %v", err)
		}
		s.flaskPeer.Kill()
		_, err = io.ReadAll(br)
		resp.Body.Close()
		if err == nil {
			t.Fatalf("the truncated stream ended cleanly")
		}
		// With the app gone, new requests get a clean 502.
		r2, err := c.Get(base + "/flask/")
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != http.StatusBadGateway {
			t.Fatalf("after the kill: %d, want 502", r2.StatusCode)
		}
	})
}
