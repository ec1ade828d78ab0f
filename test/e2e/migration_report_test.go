package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/testpeer"
	"github.com/switchyard/switchyard/migration"
)

// The migration report with real peers: a shadow route between a stock Django project under uWSGI and an
// Express app, and the report page as headless Chromium renders it. (Package migration tests the report
// against in-process apps.)

// migrationGateway builds a gateway from environment-form variables, served through the binary's
// listener stack, and returns it with its front URL.
func migrationGateway(t *testing.T, env map[string]string) (*gateway.Gateway, string) {
	t.Helper()
	env["GATEWAY_ADMIN_ADDR"] = ""
	srv, g, _ := startGateway(t, env)
	return g, srv.URL
}

// httpApp serves h on loopback until the test ends and returns its URL.
func httpApp(t *testing.T, h http.HandlerFunc) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// get GETs u and returns the status, body and header.
func get(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// migrationReport reads the report as /api/migration serves it.
func migrationReport(t *testing.T, g *gateway.Gateway) migration.Report {
	t.Helper()
	rec := httptest.NewRecorder()
	g.Admin["/api/migration"].ServeHTTP(rec, httptest.NewRequest("GET", "/api/migration", nil))
	var rep migration.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, rec.Body.String())
	}
	return rep
}

func reportRoute(t *testing.T, rep migration.Report, pattern string) migration.RouteReport {
	t.Helper()
	for _, r := range rep.Routes {
		if r.Pattern == pattern {
			return r
		}
	}
	t.Fatalf("route %s not in the report: %+v", pattern, rep.Routes)
	return migration.RouteReport{}
}

// waitShadow waits until the route has compared n shadow copies, on the recorder's signal.
func waitShadow(t *testing.T, g *gateway.Gateway, pattern string, n uint64) migration.RouteReport {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := g.Migration.ShadowUpdated()
		r := reportRoute(t, migrationReport(t, g), pattern)
		if r.Shadow != nil && r.Shadow.Compared >= n {
			return r
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("shadow of %s compared %+v; want %d", pattern, r.Shadow, n)
		}
	}
}

// chromiumRunner returns a function that runs headless Chromium with its own profile and the given flags
// plus args, and returns what it printed.
func chromiumRunner(t *testing.T, chromium string, flags ...string) func(args ...string) string {
	profile := t.TempDir()
	return func(args ...string) string {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + filepath.Join(profile, "profile")}
		cmd := exec.CommandContext(testpeer.Context(t), chromium, append(append(base, flags...), args...)...)
		cmd.Env = append(os.Environ(), "HOME="+profile)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
}

// The product catalogue both apps serve: the old one (Django) and the new one (Express) agree on every
// product but the second, whose price the new app gets wrong. Each answer also carries generated_at, a
// volatile field the route ignores.
const (
	djangoViews = `import time

from django.http import JsonResponse
from django.urls import path

PRODUCTS = {
    1: {"sku": "TEA-1", "name": "Green tea", "price": 4.5, "tags": ["tea", "green"]},
    2: {"sku": "TEA-2", "name": "Black tea", "price": 5.25, "tags": ["tea"]},
}


def product(request, pk):
    p = PRODUCTS.get(pk)
    if p is None:
        return JsonResponse({"error": "no such product"}, status=404)
    return JsonResponse(dict(p, id=pk, generated_at=time.time()))


urlpatterns = [path("api/products/<int:pk>", product)]
`
	expressApp = `'use strict';
const express = require('express');
const products = {
  1: { sku: 'TEA-1', name: 'Green tea', price: 4.5, tags: ['tea', 'green'] },
  2: { sku: 'TEA-2', name: 'Black tea', price: 5.75, tags: ['tea'] },
};
const app = express();
app.get('/api/products/:id', (req, res) => {
  const id = Number(req.params.id);
  const p = products[id];
  if (!p) return res.status(404).json({ error: 'no such product' });
  res.json({ generated_at: new Date().toISOString(), id, ...p });
});
app.listen(process.env.SOCKET);
`
)

// startDjangoJSON creates a project with django-admin startproject, as a user does, adds the product
// view as its URLconf, and serves it with uWSGI on a unix socket.
func startDjangoJSON(t *testing.T) string {
	t.Helper()
	dir := testpeer.StartProject(t, "catalogue") // django-admin startproject, as a user does
	if err := os.WriteFile(filepath.Join(dir, "catalogue", "urls.py"), []byte(djangoViews), 0o644); err != nil {
		t.Fatal(err)
	}
	// Served as the project recommends for Django: uWSGI's own protocol. The old app of a migrating route
	// sees the request as with no route (SCRIPT_NAME empty, PATH_INFO the whole path), so the project's
	// URLconf needs no change.
	peer := testpeer.StartUWSGI(t, testpeer.UWSGI{
		Dir: dir,
		App: []string{"--module", "catalogue.wsgi"},
		Env: []string{"PYTHONDONTWRITEBYTECODE=1"},
	})
	return "uwsgi+unix://" + peer.Addr
}

// startExpressJSON runs the product handler on Express (the example app's dependencies) on a unix socket.
func startExpressJSON(t *testing.T) string {
	t.Helper()
	node := testpeer.Need(t, "install Node.js 20 (apt-get install nodejs)", "node")[0]
	modules := filepath.Join(testpeer.NodeDir(), "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "express", "package.json")); err != nil {
		testpeer.Missing(t, "express is not installed; run: npm ci --prefix deploy/examples/node")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "catalogue.js")
	if err := os.WriteFile(script, []byte(expressApp), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := testpeer.SocketPath(t, "express.sock")
	p := testpeer.Start(t, dir, []string{"NODE_PATH=" + modules, "SOCKET=" + sock}, node, script)
	testpeer.WaitDial(t, p, "unix", sock, testpeer.PeerStartTimeout)
	return "unix://" + sock
}

func TestDjangoAndExpressServingTheSameJSONMatchAndAChangedPriceIsNamed(t *testing.T) {
	django := startDjangoJSON(t)
	express := startExpressJSON(t)
	g, front := migrationGateway(t, map[string]string{
		"GATEWAY_ROUTES": "/api/=" + express + "?stage=shadow&shadow_ignore=generated_at&old=" + url.QueryEscape(django),
	})

	// The two frameworks really do speak with different accents: the test is only worth something if
	// Express adds the charset Django leaves out.
	_, _, hdr := get(t, front+"/api/products/1")
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Django answered Content-Type %q; want application/json", ct)
	}

	for i := 0; i < 4; i++ {
		status, body, _ := get(t, front+"/api/products/1")
		if status != 200 || !strings.Contains(body, `"Green tea"`) {
			t.Fatalf("client got %d %s; want Django's product", status, body)
		}
	}
	r := waitShadow(t, g, "/api/", 5)
	s := r.Shadow
	if s.Matched != 5 || s.MatchRate != 1 || len(s.Causes) != 0 {
		t.Fatalf("product 1: shadow = %+v; want 5 of 5 copies matching (100%%)", s)
	}
	if !strings.HasPrefix(strings.Join(s.Parts, "; "), "status; header Content-Type (as a media type") {
		t.Fatalf("parts = %q; want the report to say status and Content-Type were compared", s.Parts)
	}

	for i := 0; i < 2; i++ {
		if status, body, _ := get(t, front+"/api/products/2"); status != 200 || !strings.Contains(body, `5.25`) {
			t.Fatalf("client got %d %s; want Django's price", status, body)
		}
	}
	s = waitShadow(t, g, "/api/", 7).Shadow
	if s.Matched != 5 || s.Mismatched != 2 {
		t.Fatalf("shadow = %+v; want 5 matched, 2 mismatched", s)
	}
	if len(s.Causes) != 1 || s.Causes[0] != (migration.CauseCount{Cause: "body $.price", Count: 2}) {
		t.Fatalf("causes = %+v; want the price, twice", s.Causes)
	}
	m := s.Mismatches[0]
	if fmt.Sprint(m.Diff) != "[$.price: 5.25 != 5.75]" || fmt.Sprint(m.Causes) != "[body $.price]" || m.Path != "/api/products/2" {
		t.Fatalf("mismatch = %+v; want exactly $.price", m)
	}
}

// shadowRoute builds /api/ in the shadow stage: the old app answers Ann, the new one Anne, both with a
// changing timestamp that is ignored.
func shadowRoute(t *testing.T) (*gateway.Gateway, string, *atomic.Int64) {
	var n atomic.Int64
	old := httpApp(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"user":{"name":"Ann","id":7},"generated_at":%d}`, n.Add(1))
	})
	var newHits atomic.Int64
	newApp := httpApp(t, func(w http.ResponseWriter, r *http.Request) {
		newHits.Add(1)
		if r.Header.Get("X-Switchyard-Shadow") != "1" {
			http.Error(w, "not a shadow copy", 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"generated_at":%d,"user":{"id":7,"name":"Anne"}}`, time.Now().UnixNano())
	})
	g, front := migrationGateway(t, map[string]string{
		"GATEWAY_ROUTES": "/api/=" + newApp + "?stage=shadow&shadow_ignore=$.generated_at&old=" + url.QueryEscape(old),
	})
	return g, front, &newHits
}

func TestTheReportPageRendersInHeadlessChromium(t *testing.T) {
	chromium := testpeer.Need(t, "install the chromium Debian package", "chromium")[0]
	g, front, _ := shadowRoute(t)
	for i := 0; i < 3; i++ {
		get(t, front+"/api/user/7")
	}
	waitShadow(t, g, "/api/", 3)
	get(t, front+"/nowhere") // a request no route claims

	mux := http.NewServeMux()
	for p, h := range g.Admin {
		mux.Handle(p, h)
	}
	admin := httptest.NewServer(mux)
	defer admin.Close()

	run := chromiumRunner(t, chromium, "--window-size=1280,900")
	dir := t.TempDir()
	png := filepath.Join(dir, "migration.png")
	run("--screenshot="+png, admin.URL+"/migration")
	if fi, err := os.Stat(png); err != nil || fi.Size() < 10000 {
		t.Fatalf("screenshot %s: %v (size %v)", png, err, fi)
	}
	if out := os.Getenv("SWITCHYARD_SCREENSHOT_DIR"); out != "" {
		b, _ := os.ReadFile(png)
		os.WriteFile(filepath.Join(out, "migration.png"), b, 0o644)
	}
	dom := run("--dump-dom", admin.URL+"/migration")
	for _, want := range []string{
		`<section class="route" data-pattern="/api/">`,
		`<b class="requests">3</b>`,      // three requests on the shadow route
		`<b class="new-share">0.0%</b>`,  // all served by the old app
		`<b class="match-rate">0.0%</b>`, // every copy differed
		`<b class="compared">3</b>`,      //
		`<b class="mismatched">3</b>`,    //
		`$.user.name: "Ann" != "Anne"`,   // the readable diff (escaped as text in the DOM)
		`<td class="apps">/api/</td><td class="apps">/api/user/{id}</td><td class="num">3</td>`, // ledger row
	} {
		want = strings.ReplaceAll(want, `"Ann" != "Anne"`, `"Ann" != "Anne"`)
		if !strings.Contains(dom, want) && !strings.Contains(dom, strings.ReplaceAll(want, `"`, "&quot;")) {
			t.Errorf("page lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%.6000s", dom)
	}
}

// unixApp serves h on a unix socket named name in dir and returns its APP URL.
func unixApp(t *testing.T, dir, name string, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(dir, name)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

// fitPage frames /migration in an iframe 1200 px wide and, once loaded, writes how wide its content is.
const fitPage = `<!doctype html><html><body style="margin:0">
<iframe id="f" src="/migration" width="1200" height="900" style="border:0"></iframe><pre id="out"></pre>
<script>
window.addEventListener("load", function () {
  var d = document.getElementById("f").contentDocument.documentElement;
  document.getElementById("out").textContent = "content=" + d.scrollWidth + " window=" + d.clientWidth;
});
</script></body></html>`

// TestTheReportPageFitsA1200PixelWindow fills the page with the longest labels apps get by default (unix
// sockets deep in a directory, several instances) and long paths, and checks in headless Chromium that
// nothing is wider than a 1200 px window; routes without a stage are rows of one table, not boxes.
func TestTheReportPageFitsA1200PixelWindow(t *testing.T) {
	chromium := testpeer.Need(t, "install the chromium Debian package", "chromium")[0]
	// A socket path near the 108-byte limit of sun_path gives about the longest label an app can have.
	dir := t.TempDir()
	if pad := 80 - len(dir); pad > 0 {
		dir = filepath.Join(dir, strings.Repeat("d", pad))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	product := func(price string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"sku":"TEA-1","description":"%s","price":%s,"path":%q}`, strings.Repeat("long text without spaces-", 20), price, r.URL.Path)
		}
	}
	newApp := unixApp(t, dir, "catalogue-new.sock", product("5.75"))
	oldShop := unixApp(t, dir, "shop-old-app.sock", product("5.25"))
	old1, old2 := httpApp(t, product("5.25")), httpApp(t, product("5.25"))
	oldPair := old1 + "|" + old2 + "?lb=round_robin"
	primary := httpApp(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "primary") })
	g, front := migrationGateway(t, map[string]string{
		"GATEWAY_PRIMARY": primary,
		"GATEWAY_ROUTES": strings.Join([]string{
			"/catalogue/products/=" + newApp + "?stage=shadow&old=" + url.QueryEscape(oldPair),
			"/shop/=" + newApp + "?stage=canary&canary=50&sticky=header:X-User&old=" + url.QueryEscape(oldShop),
			"/static/=" + oldShop,
		}, ","),
	})
	long := "/catalogue/products/" + strings.Repeat("x", 120) + "/reviews/" + strings.Repeat("9", 30)
	for i := 0; i < 3; i++ {
		get(t, front+long)
	}
	for i := 0; i < 10; i++ {
		req, _ := http.NewRequest("GET", front+"/shop/basket/"+strconv.Itoa(i), nil)
		req.Header.Set("X-User", strconv.Itoa(i))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	get(t, front+"/static/site.css")
	get(t, front+"/")
	waitShadow(t, g, "/catalogue/products/", 3)

	mux := http.NewServeMux()
	for p, h := range g.Admin {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/fit", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, fitPage) })
	admin := httptest.NewServer(mux)
	defer admin.Close()

	run := chromiumRunner(t, chromium, "--hide-scrollbars", "--window-size=1200,2400", "--virtual-time-budget=10000")
	m := regexp.MustCompile(`content=(\d+) window=(\d+)`).FindStringSubmatch(run("--dump-dom", admin.URL+"/fit"))
	if m == nil {
		t.Fatal("the frame page did not measure the report")
	}
	content, window := atoi(t, m[1]), atoi(t, m[2])
	if window < 1100 || content > window {
		t.Errorf("the report is %d px wide in a %d px window; want it to fit", content, window)
	}
	if out := os.Getenv("SWITCHYARD_SCREENSHOT_DIR"); out != "" {
		run("--screenshot="+filepath.Join(out, "migration-1200.png"), admin.URL+"/migration")
	}

	dom := run("--dump-dom", admin.URL+"/migration")
	for _, pattern := range []string{"/static/", "*"} {
		if strings.Contains(dom, `<section class="route" data-pattern="`+pattern+`"`) {
			t.Errorf("route %s has no stage but got a box of its own", pattern)
		}
		if !strings.Contains(dom, `<tr data-pattern="`+pattern+`">`) {
			t.Errorf("route %s is not a row of the table of routes without a stage", pattern)
		}
	}
	for _, pattern := range []string{"/catalogue/products/", "/shop/"} {
		if !strings.Contains(dom, `<section class="route" data-pattern="`+pattern+`"`) {
			t.Errorf("route %s has a stage but no box", pattern)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%.8000s", dom)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
