package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// adminOf serves the admin handler of g.
func adminOf(t *testing.T, g *gateway.Gateway) string {
	t.Helper()
	srv := httptest.NewServer(admin.Handler(func() *gateway.Gateway { return g }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

// fetch GETs u and returns the status and body.
func fetch(t *testing.T, u string, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if host != "" {
		req.Host = host
	}
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls cond every 20ms until it holds or 30s have passed (checks run every 100ms; the bound is
// for a loaded CI machine), and fails the test with last() otherwise.
func eventually(t *testing.T, what string, cond func() bool, last func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s; last: %s", what, last())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readyz returns the status and body of the admin listener's /readyz.
func readyz(t *testing.T, adminURL string) (int, string) {
	t.Helper()
	return fetch(t, adminURL+"/readyz", "")
}

// TestReadinessReflectsAStockDjangoOverUWSGI runs a project exactly as `django-admin startproject` makes
// it under uWSGI, as the primary over the uwsgi protocol, and checks that /readyz and the traffic follow
// Django: with a health check through the protocol, with the ALLOWED_HOSTS trap, and without any check.
func TestReadinessReflectsAStockDjangoOverUWSGI(t *testing.T) {
	dir := testpeer.StartProject(t, "mysite")
	django := testpeer.StartUWSGI(t, testpeer.UWSGI{Dir: dir, App: []string{"--module", "mysite.wsgi"},
		Env: []string{"PYTHONDONTWRITEBYTECODE=1"}})
	app := "uwsgi+unix://" + django.Addr

	// health_host defaults to "localhost" for a unix socket: one of the hosts a stock project (DEBUG on,
	// ALLOWED_HOSTS empty) answers.
	checked, gc, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": app + "?health_path=/admin/login/&health_interval=100ms&health_timeout=5s"})
	checkedAdmin := adminOf(t, gc)
	// The trap: a health_host Django does not allow gets 400 DisallowedHost, so the only instance fails
	// its check and everything is 503, although Django runs.
	trapped, gt, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": app + "?health_path=/admin/login/&health_interval=100ms&health_timeout=5s&health_host=app.example.com"})
	trappedAdmin := adminOf(t, gt)
	unchecked, gu, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": app})
	uncheckedAdmin := adminOf(t, gu)

	var last string
	eventually(t, "ready once Django passes its check", func() bool {
		code, body := readyz(t, checkedAdmin)
		last = body
		return code == 200
	}, func() string { return last })
	if code, body := fetch(t, checked.URL+"/admin/login/", "localhost"); code != 200 || !strings.Contains(body, "csrfmiddlewaretoken") {
		t.Fatalf("Django's admin login through the gateway: %d\n%.500s", code, body)
	}
	if code, body := readyz(t, uncheckedAdmin); code != 200 {
		t.Fatalf("without checks a reachable Django is ready: %d %s", code, body)
	}

	t.Run("a health_host Django does not allow fails closed: 503 for everything", func(t *testing.T) {
		eventually(t, "the trapped gateway reports why", func() bool {
			code, body := readyz(t, trappedAdmin)
			last = body
			return code == 503 && strings.Contains(body, "answered 400")
		}, func() string { return last })
		if code, _ := fetch(t, trapped.URL+"/admin/login/", "localhost"); code != 503 {
			t.Fatalf("a request the app would serve: %d, want 503 (fail closed)", code)
		}
	})

	django.Kill()
	<-django.Done()

	t.Run("with a check, a dead Django makes /readyz and every request 503", func(t *testing.T) {
		eventually(t, "unready after the kill", func() bool {
			code, body := readyz(t, checkedAdmin)
			last = body
			return code == 503 && strings.Contains(body, "primary ") && strings.Contains(body, "refused")
		}, func() string { return last })
		if code, _ := fetch(t, checked.URL+"/admin/login/", "localhost"); code != 503 {
			t.Fatalf("request to a failing app: %d, want 503", code)
		}
	})
	t.Run("without a check, /readyz finds the dead Django by connecting", func(t *testing.T) {
		code, body := readyz(t, uncheckedAdmin)
		if code != 503 || !strings.Contains(body, "no reachable instance") || !strings.Contains(body, "unreachable") {
			t.Fatalf("readyz: %d %q, want 503 naming the unreachable instance", code, body)
		}
		if code, _ := fetch(t, unchecked.URL+"/admin/login/", "localhost"); code != 502 {
			t.Fatalf("request: %d, want 502", code)
		}
	})
}

// TestActiveHealthChecksThroughEveryProtocol checks each network kind against a real peer: a check of a
// path the app serves passes, a check of a path it answers 404 fails (so the check is a real request
// through the protocol, not a connection), a connect-only check passes on a live app and fails on a dead
// socket; a failing app's route answers 503 and makes /readyz 503.
func TestActiveHealthChecksThroughEveryProtocol(t *testing.T) {
	dir := testpeer.StartProject(t, "mysite")
	uw := testpeer.StartUWSGI(t, testpeer.UWSGI{Dir: dir, App: []string{"--module", "mysite.wsgi"}, Env: []string{"PYTHONDONTWRITEBYTECODE=1"}})
	sc := testpeer.StartUWSGI(t, testpeer.UWSGI{Socket: "scgi", Dir: dir, App: []string{"--module", "mysite.wsgi"}, Env: []string{"PYTHONDONTWRITEBYTECODE=1"}})
	phpRoot := filepath.Join(t.TempDir(), "public")
	if err := os.CopyFS(phpRoot, os.DirFS("testdata/phpapp")); err != nil {
		t.Fatal(err)
	}
	fpm := testpeer.StartPHPFPM(t, phpRoot)
	gone := filepath.Join(t.TempDir(), "gone.sock")
	gunicornSock := testpeer.SocketPath(t, "gunicorn.sock")
	testpeer.StartGunicorn(t, dir, "mysite.wsgi", "unix:"+gunicornSock)

	const every = "&health_interval=100ms&health_timeout=5s"
	cases := []struct {
		name, route, app, probe string // probe: the path requested through the gateway
		ok                      bool
	}{
		{"uwsgi: a request to a served path passes", "/u/", "uwsgi+unix://" + uw.Addr + "?health_path=/admin/login/" + every, "/u/admin/login/", true},
		{"uwsgi: a request to a 404 path fails", "/u404/", "uwsgi+unix://" + uw.Addr + "?health_path=/nothing-here/" + every, "/u404/admin/login/", false},
		{"scgi: a request to a served path passes", "/s/", "scgi+unix://" + sc.Addr + "?health_path=/admin/login/" + every, "/s/admin/login/", true},
		{"scgi: a request to a 404 path fails", "/s404/", "scgi+unix://" + sc.Addr + "?health_path=/nothing-here/" + every, "/s404/admin/login/", false},
		{"fastcgi: a request to the front controller passes", "/p/", "fastcgi+unix://" + fpm + "?root=" + url.QueryEscape(phpRoot) + "&health_path=/" + every, "/p/", true},
		{"fastcgi: a request to a 404 page fails", "/p404/", "fastcgi+unix://" + fpm + "?root=" + url.QueryEscape(phpRoot) + "&health_path=/no/such/page" + every, "/p404/", false},
		{"http: a connect-only check of a live app passes", "/h/", "unix://" + gunicornSock + "?health_check=connect&strip_prefix=true" + every, "/h/admin/login/", true},
		{"uwsgi: a connect-only check of a live app passes", "/uc/", "uwsgi+unix://" + uw.Addr + "?health_check=connect" + every, "/uc/admin/login/", true},
		{"fastcgi: a connect-only check of a dead socket fails", "/pc/", "fastcgi+unix://" + gone + "?health_check=connect" + every, "/pc/x", false},
		{"scgi: a request check of a dead socket fails", "/sd/", "scgi+unix://" + gone + "?health_path=/" + every, "/sd/x", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The primary is a status app: only this route's app decides readiness.
			srv, g, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": "status:404", "GATEWAY_ROUTES": tc.route + "=" + tc.app})
			adm := adminOf(t, g)
			var last string
			eventually(t, "a verdict on the route's app", func() bool {
				code, body := readyz(t, adm)
				last = body
				// A failing verdict must come from the app's own check: before the first check, /readyz
				// already answers 503 for a dead socket by connecting ("unreachable"), while requests still
				// pass to the app (502) until the check has failed. Nor is "health ... not known yet" a verdict:
				// under load the first check can come after the first /readyz.
				return tc.ok && code == 200 || !tc.ok && code == 503 && strings.Contains(body, "no reachable instance") && !strings.Contains(body, " unreachable: ")
			}, func() string { return last })
			code, body := fetch(t, srv.URL+tc.probe, "localhost")
			if tc.ok && code != 200 || !tc.ok && code != 503 {
				t.Fatalf("GET %s: %d, want %d if healthy, else 503\n%.300s", tc.probe, code, map[bool]int{true: 200, false: 503}[tc.ok], body)
			}
		})
	}
}
