package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// plainFlask is a Flask app as its tutorial writes it: nothing in it knows about proxies or prefixes.
const plainFlask = `from flask import Flask, jsonify, redirect, request, url_for

app = Flask(__name__)


@app.route("/")
def index():
    return jsonify(
        url_for_index=url_for("index"),
        url_for_hello=url_for("hello", name="world"),
        url_for_hello_external=url_for("hello", name="world", _external=True),
        script_root=request.script_root,
        path=request.path,
        mount_headers={k: v for k, v in request.headers.items() if k.lower().replace("_", "-") in ("script-name", "x-script-name")},
    )


@app.route("/hello/<name>")
def hello(name):
    return "hello " + name


@app.route("/go")
def go():
    return redirect(url_for("hello", name="redirected"))
`

// proxyFixed is the same app with the one line werkzeug documents for apps behind a proxy that strips a
// prefix and says so in X-Forwarded-Prefix.
const proxyFixed = `from werkzeug.middleware.proxy_fix import ProxyFix

from app import app

app.wsgi_app = ProxyFix(app.wsgi_app, x_prefix=1)
`

// manage runs manage.py in a stock project with Debian's Python.
func manage(t *testing.T, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testpeer.DebianPython, append([]string{"manage.py"}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("manage.py %v: %v\n%s", args, err, out)
	}
}

// noRedirect is a client that shows redirects instead of following them.
func noRedirect(jar http.CookieJar) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestStockDjangoAndFlaskUnderGunicornBuildPrefixedURLs mounts a project exactly as `django-admin
// startproject` makes it and a plain Flask app, both under gunicorn, below prefixes, with
// prefix_header=script_name and nothing changed in either app, and checks the URLs they build: Django's
// reverse() (the admin's links), its redirects (APPEND_SLASH, the admin login redirect, the redirect after
// logging in) and Flask's url_for (relative and _external) and redirect. The table in docs/apps.md rests on
// it, with the ProxyFix row checked by the same Flask app plus its one documented line.
func TestStockDjangoAndFlaskUnderGunicornBuildPrefixedURLs(t *testing.T) {
	django := testpeer.StartProject(t, "mysite")
	manage(t, django, "migrate", "--noinput")
	manage(t, django, "shell", "-c", "from django.contrib.auth.models import User; User.objects.create_superuser('admin', 'admin@example.com', 'correct horse')")
	djSock := testpeer.SocketPath(t, "django.sock")
	testpeer.StartGunicorn(t, django, "mysite.wsgi", "unix:"+djSock)

	_ = testpeer.FlaskApp(t) // checks that Flask is importable; the app itself is written here
	flaskDir := t.TempDir()
	for name, src := range map[string]string{"app.py": plainFlask, "fixed.py": proxyFixed} {
		if err := os.WriteFile(filepath.Join(flaskDir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flSock := testpeer.SocketPath(t, "flask.sock")
	testpeer.StartGunicorn(t, flaskDir, "app:app", "unix:"+flSock)
	fixSock := testpeer.SocketPath(t, "fixed.sock")
	testpeer.StartGunicorn(t, flaskDir, "fixed:app", "unix:"+fixSock)

	routes := strings.Join([]string{
		"/django/=unix://" + djSock + "?prefix_header=script_name",
		"/flask/=unix://" + flSock + "?prefix_header=script_name",
		"/plain/=unix://" + flSock + "?strip_prefix=true",
		"/fixed/=unix://" + fixSock + "?prefix_header=x-forwarded-prefix",
	}, ",")
	srv, _, _, front := startGatewayFront(t, map[string]string{"GATEWAY_ROUTES": routes})
	base := srv.URL
	// Stock Django (DEBUG on, ALLOWED_HOSTS empty) answers localhost only.
	host := "localhost:" + strings.Split(strings.TrimPrefix(base, "http://"), ":")[1]
	get := func(t *testing.T, c *http.Client, path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return do(t, c, req)
	}
	c := noRedirect(nil)

	t.Run("Django: reverse(), APPEND_SLASH and the admin login redirect carry the prefix", func(t *testing.T) {
		for _, tc := range []struct{ path, status, location string }{
			{"/django/admin", "301", "/django/admin/"},
			{"/django/admin/", "302", "/django/admin/login/?next=/django/admin/"},
		} {
			resp, body := get(t, c, tc.path)
			if got := resp.Header.Get("Location"); resp.Status[:3] != tc.status || got != tc.location {
				t.Errorf("GET %s: %s Location %q, want %s %q\n%.300s", tc.path, resp.Status, got, tc.status, tc.location, body)
			}
		}
		resp, page := get(t, c, "/django/admin/login/?next=/django/admin/")
		if resp.StatusCode != 200 || !strings.Contains(page, `action="/django/admin/login/?next=/django/admin/"`) || !strings.Contains(page, `href="/django/admin/"`) {
			t.Fatalf("login page: %d, want its form and links under /django/\n%s", resp.StatusCode, page)
		}
	})

	t.Run("Django: logging in to the stock admin redirects under the prefix", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		cc := noRedirect(jar)
		_, page := get(t, cc, "/django/admin/login/?next=/django/admin/")
		tok := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`).FindStringSubmatch(page)
		if tok == nil {
			t.Fatalf("no CSRF token on the login page:\n%s", page)
		}
		form := url.Values{"csrfmiddlewaretoken": {tok[1]}, "username": {"admin"}, "password": {"correct horse"}, "next": {"/django/admin/"}}
		req, _ := http.NewRequest("POST", base+"/django/admin/login/?next=/django/admin/", strings.NewReader(form.Encode()))
		req.Host = host
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := do(t, cc, req)
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "/django/admin/" {
			t.Fatalf("login: %s Location %q, want 302 /django/admin/\n%.500s", resp.Status, resp.Header.Get("Location"), body)
		}
		resp, body = get(t, cc, "/django/admin/")
		if resp.StatusCode != 200 || !strings.Contains(body, `href="/django/admin/auth/user/"`) {
			t.Fatalf("admin index after login: %d, want links under /django/\n%.500s", resp.StatusCode, body)
		}
	})

	flaskURLs := func(t *testing.T, path string, hdr ...string) map[string]any {
		t.Helper()
		resp, body := get(t, c, path, hdr...)
		var m map[string]any
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
		}
		return m
	}
	wantFlask := func(t *testing.T, m map[string]any, prefix string) {
		t.Helper()
		for k, v := range map[string]string{"url_for_index": prefix + "/", "url_for_hello": prefix + "/hello/world",
			"url_for_hello_external": "http://" + host + prefix + "/hello/world", "script_root": prefix} {
			if m[k] != v {
				t.Errorf("%s = %v, want %q", k, m[k], v)
			}
		}
	}

	t.Run("Flask: url_for and redirect carry the prefix", func(t *testing.T) {
		wantFlask(t, flaskURLs(t, "/flask/"), "/flask")
		resp, _ := get(t, c, "/flask/go")
		if resp.StatusCode != 302 || resp.Header.Get("Location") != "/flask/hello/redirected" {
			t.Fatalf("redirect: %s Location %q", resp.Status, resp.Header.Get("Location"))
		}
		if resp, body := get(t, c, "/flask/hello/redirected"); resp.StatusCode != 200 || body != "hello redirected" {
			t.Fatalf("the redirect's target: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("a plain Flask app ignores X-Forwarded-Prefix; with ProxyFix's one line it reads it", func(t *testing.T) {
		if m := flaskURLs(t, "/plain/"); m["url_for_index"] != "/" {
			t.Fatalf("url_for under strip_prefix without ProxyFix: %v (the reason for the table's 'app must' column)", m["url_for_index"])
		}
		wantFlask(t, flaskURLs(t, "/fixed/"), "/fixed")
	})

	// Both mount forms are the lane's (on by default): the exchanges above were finished on its event
	// loops, the stripped path, X-Forwarded-Prefix and SCRIPT_NAME written by its express path.
	if fastlane.Supported && front.Lane.Looped() < 10 {
		t.Errorf("the event loops finished %d of the exchanges with a mounted app; want at least 10", front.Lane.Looped())
	}

	t.Run("a client's own mount-point headers never reach the app", func(t *testing.T) {
		m := flaskURLs(t, "/flask/", "Script-Name", "/evil", "X-Script-Name", "/evil", "X-Forwarded-Prefix", "/evil")
		wantFlask(t, m, "/flask")
		// The underscore spelling, which gunicorn itself reads.
		req, _ := http.NewRequest("GET", base+"/flask/", nil)
		req.Host = host
		req.Header["SCRIPT_NAME"] = []string{"/evil"}
		_, body := do(t, c, req)
		if !strings.Contains(body, `"script_root":"/flask"`) || strings.Contains(body, "evil") {
			t.Fatalf("with a client's SCRIPT_NAME: %s", body)
		}
		onlyOurs(t, m)
	})

	t.Run("from a trusted proxy too, only the gateway's SCRIPT_NAME reaches the app", func(t *testing.T) {
		trusted, _, _ := startGateway(t, map[string]string{"GATEWAY_ROUTES": routes, "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32,::1/128"})
		req, _ := http.NewRequest("GET", trusted.URL+"/flask/", nil)
		req.Host = host
		req.Header.Set("Script-Name", "/evil")
		req.Header.Set("X-Script-Name", "/evil")
		resp, body := do(t, c, req)
		var m map[string]any
		if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &m) != nil {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		wantFlask(t, m, "/flask")
		onlyOurs(t, m)
	})
}

// onlyOurs fails unless the one mount-point header the app saw is the gateway's SCRIPT_NAME (gunicorn
// also leaves it in the environ as HTTP_SCRIPT_NAME, and would join a second copy into it with a comma).
func onlyOurs(t *testing.T, m map[string]any) {
	t.Helper()
	got, _ := m["mount_headers"].(map[string]any)
	if len(got) != 1 || got["Script-Name"] != "/flask" {
		t.Fatalf("mount-point headers the app saw: %v, want only Script-Name: /flask (the gateway's SCRIPT_NAME)", m["mount_headers"])
	}
}
