package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// The shop part of a Django site as `django-admin startproject mysite` leaves it (DEBUG on, its default
// middleware), plus a few views that build URLs with reverse(): a page with links, a JSON view raising
// Http404 for an unknown product, a cookie whose path is reverse()d, and a redirect.
const (
	shopViews = `from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

PRODUCTS = {1: "Green tea", 2: "Black tea"}


def index(request):
    return HttpResponse('<a href="%s">tea</a> <a href="%s">cart</a> %s' % (
        reverse("product", args=[1]), reverse("cart"), request.build_absolute_uri()))


@csrf_exempt
def product(request, pk):
    if pk not in PRODUCTS:
        raise Http404("no such product")
    return JsonResponse({"name": PRODUCTS[pk], "url": reverse("product", args=[pk]),
                         "script_name": request.META.get("SCRIPT_NAME", ""), "path": request.path,
                         "method": request.method})


def cart(request):
    response = HttpResponse("cart of " + request.COOKIES.get("visitor", "a new visitor"))
    response.set_cookie("visitor", "tea-lover", path=reverse("index"))
    return response


def checkout(request):
    return redirect("cart")
`
	shopURLs = `
from django.urls import path as _path
from mysite import shop

urlpatterns += [
    _path("shop/", shop.index, name="index"),
    _path("shop/products/<int:pk>/", shop.product, name="product"),
    _path("shop/cart/", shop.cart, name="cart"),
    _path("shop/checkout/", shop.checkout),
]
`
	// passMiddleware is the middleware docs/migration.md gives for pass_header, verbatim.
	passMiddleware = `from django.urls import Resolver404, resolve


class PassUnknownPaths:
    """Marks the 404 of a URL no pattern matches, so the gateway passes the request on."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 404:
            try:
                resolve(request.path_info, getattr(request, "urlconf", None))
            except Resolver404:
                response["X-Switchyard-Pass"] = "1"
        return response
`
	passSettings = `
MIDDLEWARE.insert(0, "mysite.switchyard.PassUnknownPaths")
`
	// expressShop is an Express app whose final handler is the one docs/migration.md gives for pass_header,
	// verbatim: a product route answers its own 404, a path with no route is marked.
	expressShop = `'use strict';
const express = require('express');
const app = express();
const products = { 1: 'Green tea' };
app.get('/products/:id', (req, res) => {
  const name = products[req.params.id];
  if (!name) return res.status(404).json({ error: 'no such product' });
  res.json({ name });
});

// Last, after every route: a path no route matched is not this app's.
app.use((req, res) => {
  res.set('X-Switchyard-Pass', '1').status(404).send('Not Found');
});

app.listen(process.env.SOCKET);
`
)

// startDjangoSite creates a project with django-admin startproject, adds the shop views and the
// pass-marking middleware, and serves it under uWSGI over the uwsgi protocol on a unix socket. It returns
// the APP URL.
func startDjangoSite(t *testing.T) string {
	t.Helper()
	admin := testpeer.Need(t, "apt-get install python3-django", "django-admin")[0]
	testpeer.NeedUWSGI(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, admin, "startproject", "mysite", dir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "PYTHONDONTWRITEBYTECODE=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("django-admin startproject: %v\n%s", err, out)
	}
	pkg := filepath.Join(dir, "mysite")
	write := func(name, text string, appendTo bool) {
		flag := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
		if appendTo {
			flag = os.O_APPEND | os.O_WRONLY
		}
		f, err := os.OpenFile(filepath.Join(pkg, name), flag, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("shop.py", shopViews, false)
	write("switchyard.py", passMiddleware, false)
	write("urls.py", shopURLs, true)
	write("settings.py", passSettings, true)
	peer := testpeer.StartUWSGI(t, testpeer.UWSGI{
		Dir:  dir,
		App:  []string{"--module", "mysite.wsgi"},
		Args: []string{"--threads", "4"},
		Env:  []string{"PYTHONDONTWRITEBYTECODE=1"},
	})
	return "uwsgi+unix://" + peer.Addr
}

// serveGateway builds a gateway from environment-form settings and serves it on loopback through the
// binary's listener stack (startGateway).
func serveGateway(t *testing.T, env map[string]string) string {
	t.Helper()
	srv, _, _ := startGateway(t, env)
	return srv.URL
}

// answer is what the comparison looks at: everything the client gets but the Date and the gateway's
// X-Request-Id, which differ on every request.
type answer struct {
	Status int
	Header http.Header
	Body   string
}

var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// ask sends one request as a browser on http://localhost would (Django's DEBUG ALLOWED_HOSTS) and returns
// the answer. The canary cookie is always sent, so no stage adds its own Set-Cookie.
func ask(t *testing.T, base, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "localhost"
	req.Header.Set("Cookie", "switchyard_canary=c1")
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Header.Del("Date")
	resp.Header.Del("X-Request-Id")
	sort.Strings(resp.Header["Set-Cookie"])
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// shopRequests are the requests compared under /shop/: pages, JSON, a view's Http404, a URL no pattern
// matches, Django's APPEND_SLASH redirects (/shop itself included), a view's redirect, a cookie with a
// reverse()d path, and a POST (re-sent to the old side when the new app passes it on).
var shopRequests = []struct{ method, path, body string }{
	{"GET", "/shop/", ""},
	{"GET", "/shop/?q=tea", ""},
	{"GET", "/shop", ""},
	{"GET", "/shop/products/1/", ""},
	{"GET", "/shop/products/9/", ""},
	{"GET", "/shop/nope/", ""},
	{"GET", "/shop/cart", ""},
	{"GET", "/shop/cart/", ""},
	{"GET", "/shop/checkout/", ""},
	{"POST", "/shop/products/2/", "qty=3"},
}

// TestTheOldDjangoKeepsItsSiteAtEveryStage is issue 12 §1: a Django that serves the whole site over uwsgi,
// put as the old app of a /shop/ route, answers under /shop/ byte for byte as it does with no route at
// all, whatever the stage. The new app (prefix stripped) knows only /shop/new/ and answers 404 for the
// rest, so every compared answer comes from the old side: the old app itself, with no other app behind it
// (a cascade to the primary would hide a wrong SCRIPT_NAME behind a second try), or at "retired", where
// the old app gets nothing, the primary (the same Django) through cascade=true.
func TestTheOldDjangoKeepsItsSiteAtEveryStage(t *testing.T) {
	django := startDjangoSite(t)
	newApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/new/" {
			io.WriteString(w, "the new app")
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(newApp.Close)

	reference := serveGateway(t, map[string]string{"GATEWAY_PRIMARY": django})
	want := map[string]answer{}
	for _, rq := range shopRequests {
		want[rq.method+" "+rq.path] = ask(t, reference, rq.method, rq.path, rq.body)
	}
	// The reference must show what the comparison is about: URLs built from the mount, at /shop/.
	for key, check := range map[string]func(a answer) bool{
		"GET /shop/":             func(a answer) bool { return a.Status == 200 && strings.Contains(a.Body, `href="/shop/products/1/"`) },
		"GET /shop":              func(a answer) bool { return a.Status == 301 && a.Header.Get("Location") == "/shop/" },
		"GET /shop/products/1/":  func(a answer) bool { return strings.Contains(a.Body, `"script_name": ""`) },
		"GET /shop/products/9/":  func(a answer) bool { return a.Status == 404 && strings.Contains(a.Body, "no such product") },
		"GET /shop/cart/":        func(a answer) bool { return strings.Contains(a.Header.Get("Set-Cookie"), "Path=/shop/") },
		"GET /shop/checkout/":    func(a answer) bool { return a.Status == 302 && a.Header.Get("Location") == "/shop/cart/" },
		"POST /shop/products/2/": func(a answer) bool { return a.Status == 200 && strings.Contains(a.Body, `"method": "POST"`) },
	} {
		if a := want[key]; !check(a) {
			t.Fatalf("without a route, %s gave %d %v\n%s", key, a.Status, a.Header, a.Body)
		}
	}

	for _, stage := range []struct {
		options  string
		newFirst bool // the new app answers first (and /shop/new/ is its)
	}{
		{"stage=legacy", false},
		{"stage=shadow", false},
		{"stage=canary&canary=0", false},
		{"stage=canary&canary=100", true},
		{"stage=primary", true},
		{"stage=retired&cascade=true", true},
	} {
		t.Run(stage.options, func(t *testing.T) {
			route := "/shop/=" + newApp.URL + "?strip_prefix=true&" + stage.options + "&old=" + url.QueryEscape(django)
			base := serveGateway(t, map[string]string{"GATEWAY_PRIMARY": django, "GATEWAY_ROUTES": route})
			for _, rq := range shopRequests {
				key := rq.method + " " + rq.path
				if diff := cmp.Diff(want[key], ask(t, base, rq.method, rq.path, rq.body)); diff != "" {
					t.Errorf("%s differs from the same Django without the route (-without +with):\n%s", key, diff)
				}
			}
			// The stage really is in place: the new app answers its own path once it is in front.
			got := ask(t, base, "GET", "/shop/new/", "")
			if isNew := got.Body == "the new app"; isNew != stage.newFirst {
				t.Errorf("GET /shop/new/: %d %v %.80q; the new app answering = %v, want %v", got.Status, got.Header, got.Body, isNew, stage.newFirst)
			}
		})
	}
}

// TestADjangoViewsHttp404IsFinalAndAnUnknownURLFallsThrough is issue 12 §4: with pass_header, Django's
// own 404 pages (a view raising Http404) reach the client and are never re-sent, while a URL no pattern
// matches (Resolver404, marked by the middleware of docs/migration.md) still falls through to the legacy
// app, body included. Without the option, every 404 falls through, the view's included.
func TestADjangoViewsHttp404IsFinalAndAnUnknownURLFallsThrough(t *testing.T) {
	django := startDjangoSite(t)
	var legacyHits atomic.Int64
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		legacyHits.Add(1)
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "legacy: %s %s %s", r.Method, r.URL.Path, b)
	}))
	t.Cleanup(legacy.Close)

	marked := serveGateway(t, map[string]string{
		"GATEWAY_PRIMARY":   django + "?pass_header=X-Switchyard-Pass",
		"GATEWAY_DELEGATES": legacy.URL,
	})
	plain := serveGateway(t, map[string]string{"GATEWAY_PRIMARY": django, "GATEWAY_DELEGATES": legacy.URL})

	tests := []struct {
		name               string
		base               string
		method, path, body string
		wantStatus         int
		wantBody           string // a substring
		wantLegacy         bool   // the legacy app was asked
	}{
		{"a view raising Http404 is final", marked, "GET", "/shop/products/9/", "", 404, "no such product", false},
		{"a POST a view answered 404 is not re-sent", marked, "POST", "/shop/products/9/", "qty=1", 404, "no such product", false},
		{"a URL no pattern matches falls through", marked, "GET", "/blog/2020/", "", 200, "legacy: GET /blog/2020/ ", true},
		{"a POST to an unknown URL falls through with its body", marked, "POST", "/blog/comment/", "text=hi", 200, "legacy: POST /blog/comment/ text=hi", true},
		{"Django's own pages still answer", marked, "GET", "/shop/products/1/", "", 200, `"name": "Green tea"`, false},
		{"without pass_header the view's 404 page is replaced by the legacy app", plain, "GET", "/shop/products/9/", "", 200, "legacy: GET /shop/products/9/", true},
		{"without pass_header the POST is re-sent to the legacy app", plain, "POST", "/shop/products/9/", "qty=1", 200, "legacy: POST /shop/products/9/ qty=1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := legacyHits.Load()
			got := ask(t, tt.base, tt.method, tt.path, tt.body)
			if got.Status != tt.wantStatus || !strings.Contains(got.Body, tt.wantBody) {
				t.Errorf("%s %s: %d %.300q; want %d with %q", tt.method, tt.path, got.Status, got.Body, tt.wantStatus, tt.wantBody)
			}
			if asked := legacyHits.Load() > before; asked != tt.wantLegacy {
				t.Errorf("%s %s: legacy app asked = %v, want %v", tt.method, tt.path, asked, tt.wantLegacy)
			}
			if v, ok := got.Header["X-Switchyard-Pass"]; ok {
				t.Errorf("%s %s: the client got X-Switchyard-Pass %q", tt.method, tt.path, v)
			}
		})
	}
}

// TestAnExpressRoutes404IsFinalAndItsFinalHandlerPasses is the Express half of docs/migration.md's
// pass_header recipe: a route's own 404 reaches the client, a path no route matched falls through.
func TestAnExpressRoutes404IsFinalAndItsFinalHandlerPasses(t *testing.T) {
	node := testpeer.Need(t, "install Node.js 20 (apt-get install nodejs)", "node")[0]
	modules := filepath.Join(testpeer.NodeDir(), "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "express", "package.json")); err != nil {
		testpeer.Missing(t, "express is not installed; run: npm ci --prefix deploy/examples/node")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "shop.js")
	if err := os.WriteFile(script, []byte(expressShop), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := testpeer.SocketPath(t, "express.sock")
	p := testpeer.Start(t, dir, []string{"NODE_PATH=" + modules, "SOCKET=" + sock}, node, script)
	testpeer.WaitDial(t, p, "unix", sock, testpeer.PeerStartTimeout)
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "legacy: %s %s", r.Method, r.URL.Path)
	}))
	t.Cleanup(legacy.Close)
	base := serveGateway(t, map[string]string{
		"GATEWAY_ROUTES": "/shop/=unix://" + sock + "?strip_prefix=true&pass_header=X-Switchyard-Pass&stage=primary&old=" + url.QueryEscape(legacy.URL),
	})
	for _, tc := range []struct {
		path, wantBody string
		wantStatus     int
	}{
		{"/shop/products/1", `{"name":"Green tea"}`, 200},
		{"/shop/products/9", `{"error":"no such product"}`, 404},
		{"/shop/gift-cards/", "legacy: GET /shop/gift-cards/", 200},
	} {
		got := ask(t, base, "GET", tc.path, "")
		if got.Status != tc.wantStatus || got.Body != tc.wantBody || got.Header.Get("X-Switchyard-Pass") != "" {
			t.Errorf("GET %s: %d %q (X-Switchyard-Pass %q); want %d %q without the header", tc.path, got.Status, got.Body,
				got.Header.Get("X-Switchyard-Pass"), tc.wantStatus, tc.wantBody)
		}
	}
}
