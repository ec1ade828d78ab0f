package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// GATEWAY_FAST_LANE=true in front of a plain Flask app under gunicorn, as docs/performance.md tells a user
// to try it: the lane serves the small requests itself and hands the others (a chunked upload) to
// net/http on the same connection; the app sees no difference either way.
func TestTheFastLaneServesAStockFlaskApp(t *testing.T) {
	if !fastlane.Supported {
		t.Skip("the fast lane runs on Linux only")
	}
	sock := startPlainFlask(t)
	srv, _, _, f := startGatewayFront(t, map[string]string{"GATEWAY_PRIMARY": "unix://" + sock, "GATEWAY_FAST_LANE": "true"})
	base := srv.URL
	if f.Lane == nil {
		t.Fatal("GATEWAY_FAST_LANE=true built no lane")
	}

	body := bytes.Repeat([]byte("sku-42,"), 100)
	sum := fmt.Sprintf("%x", sha256.Sum256(body))
	chunked, _ := http.NewRequest("POST", base+"/shop/cart", io.MultiReader(bytes.NewReader(body))) // no length: chunked
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want string
	}{
		{"a GET", func() *http.Request { r, _ := http.NewRequest("GET", base+"/", nil); return r }, "flask home"},
		{"a GET under a path", func() *http.Request { r, _ := http.NewRequest("GET", base+"/shop/", nil); return r }, "flask shop"},
		{"a small POST", func() *http.Request {
			r, _ := http.NewRequest("POST", base+"/shop/cart", bytes.NewReader(body))
			return r
		}, fmt.Sprintf("flask cart %s %d", sum, len(body))},
		{"a chunked POST (handed to net/http)", func() *http.Request { return chunked }, fmt.Sprintf("flask cart %s %d", sum, len(body))},
	} {
		resp, err := http.DefaultClient.Do(tc.req())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != tc.want {
			t.Errorf("%s: %d %q, want 200 %q", tc.name, resp.StatusCode, b, tc.want)
		}
	}
	// gunicorn's answers have a length and a type: the lane's express path writes them itself.
	if f.Lane.Expressed() < 3 {
		t.Errorf("the lane's express path served %d requests; want the three small ones", f.Lane.Expressed())
	}
	// On the lane's event loops (GATEWAY_FAST_LANE_LOOPS, on by default), with no goroutine per connection.
	if f.Lane.Looped() < 3 {
		t.Errorf("the event loops finished %d exchanges; want the three small ones", f.Lane.Looped())
	}
	if f.Lane.Served() < 3 || f.Lane.HandedOff() < 1 {
		t.Errorf("the lane served %d requests and handed off %d connections; want the three small ones served and the chunked upload handed off",
			f.Lane.Served(), f.Lane.HandedOff())
	}
}

// A project exactly as django-admin startproject makes it, under gunicorn on a unix socket with active
// health checks (as docker-compose.yml and the Kubernetes files configure the primary; the admin's login
// page as docs/apps.md suggests), and a stock Express app mounted at /api/: the lane's event loops (on by
// default) carry the answers of both frameworks, their redirects, cookies and 404 pages, on keep-alive
// connections, with no change to either app.
func TestTheLoopsServeAStockDjangoAndExpress(t *testing.T) {
	if !fastlane.Supported {
		t.Skip("the fast lane runs on Linux only")
	}
	sock := startStockDjango(t)
	express := startExpressJSON(t)
	srv, g, _, f := startGatewayFront(t, map[string]string{
		"GATEWAY_PRIMARY":   "unix://" + sock + "?health_path=/admin/login/&health_host=localhost",
		"GATEWAY_ROUTES":    "/api/=" + express,
		"GATEWAY_FAST_LANE": "true",
	})
	base := srv.URL
	if f.Lane == nil {
		t.Fatal("GATEWAY_FAST_LANE=true built no lane")
	}

	client := &http.Client{Timeout: 30 * time.Second, // keep-alive: the loops serve each connection's next requests
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		name, path string
		status     int
		body       string // a part of the body
		header     [2]string
	}{
		{"Express: a product", "/api/products/1", 200, `"name":"Green tea"`, [2]string{"X-Powered-By", "Express"}},
		{"Express: its own 404", "/api/products/9", 404, `"error":"no such product"`, [2]string{"Content-Type", "application/json; charset=utf-8"}},
		{"Django: the admin's login page", "/admin/login/", 200, "Django administration", [2]string{"X-Frame-Options", "DENY"}},
		{"Django: the admin's redirect to it", "/admin/", 302, "", [2]string{"Location", "/admin/login/?next=/admin/"}},
		{"Django: its 404 page (DEBUG)", "/nope/", 404, "Page not found", [2]string{"Content-Type", "text/html"}},
	}
	const rounds = 3
	for round := range rounds {
		for _, tc := range cases {
			req, _ := http.NewRequest("GET", base+tc.path, nil)
			req.Host = "localhost" // Django's DEBUG ALLOWED_HOSTS
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, tc.name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.body) || resp.Header.Get(tc.header[0]) != tc.header[1] {
				t.Fatalf("round %d, %s: %d %s=%q\n%.300s\nwant %d, %s=%q and %q in the body", round, tc.name,
					resp.StatusCode, tc.header[0], resp.Header.Get(tc.header[0]), b, tc.status, tc.header[0], tc.header[1], tc.body)
			}
			if tc.path == "/admin/login/" && !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "csrftoken=") {
				t.Fatalf("round %d, %s: Set-Cookie %q; want Django's csrftoken", round, tc.name, resp.Header.Get("Set-Cookie"))
			}
		}
	}
	// Every answer has a length (gunicorn's and Express's): each exchange is finished on a loop.
	if n := f.Lane.Looped(); n < rounds*uint64(len(cases)) {
		t.Errorf("the event loops finished %d exchanges; want all %d", n, rounds*len(cases))
	}
	if n := f.Lane.HandedOff(); n != 0 {
		t.Errorf("the lane handed %d connections to net/http; want none", n)
	}
	// The checks and the exchanges counted on the one instance: healthy, nothing left in flight.
	checked := false
	for _, a := range g.Apps {
		if a.Role != "primary" {
			continue
		}
		checked = true
		h := a.Handler.(adapters.HealthReporter).Health()[0]
		if !h.Healthy || !h.Known || h.InFlight != 0 {
			t.Errorf("the primary's health after the exchanges: %+v; want healthy, known, none in flight", h)
		}
	}
	if !checked {
		t.Error("no primary among the gateway's apps")
	}
}

// The README's first pattern with stock apps: a project exactly as django-admin startproject makes it is
// the primary, and whatever it does not know (its DEBUG 404 page) falls through to a plain Flask app, the
// delegate, both under gunicorn. The lane's event loops ask the two in turn themselves: Django's admin,
// Flask's pages and a POST whose body both apps get, on keep-alive connections, with nothing handed to
// net/http; the fall-throughs are counted as the handler chain counts them.
func TestTheLoopsFallThroughFromAStockDjangoToAFlaskApp(t *testing.T) {
	if !fastlane.Supported {
		t.Skip("the fast lane runs on Linux only")
	}
	sock := startStockDjango(t)
	flask := startPlainFlask(t)
	srv, _, _, f := startGatewayFront(t, map[string]string{
		"GATEWAY_PRIMARY":   "unix://" + sock,
		"GATEWAY_DELEGATES": "unix://" + flask,
	})
	if f.Lane == nil {
		t.Fatal("no lane (it is on by default)")
	}
	body := bytes.Repeat([]byte("sku-7,"), 50)
	sum := fmt.Sprintf("%x", sha256.Sum256(body))
	client := &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		want               string // a part of the body
	}{
		{"Django: the admin's login page", "GET", "/admin/login/", nil, 200, "Django administration"},
		{"Django: the admin's redirect", "GET", "/admin/", nil, 302, ""},
		{"Flask, after Django's 404", "GET", "/shop/", nil, 200, "flask shop"},
		{"Flask, a POST after Django's 404", "POST", "/shop/cart", body, 200, "flask cart " + sum + " 300"},
		{"nobody's: Flask's 404 is final", "GET", "/nope/", nil, 404, "Not Found"},
	}
	const rounds = 3
	for round := range rounds {
		for _, tc := range cases {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, bytes.NewReader(tc.body))
			req.Host = "localhost" // Django's DEBUG ALLOWED_HOSTS
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, tc.name, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("round %d, %s: %d %.300q; want %d with %q", round, tc.name, resp.StatusCode, b, tc.status, tc.want)
			}
		}
	}
	if n := f.Lane.Looped(); n < rounds*uint64(len(cases)) {
		t.Errorf("the event loops finished %d exchanges; want all %d", n, rounds*len(cases))
	}
	if n := f.Lane.HandedOff(); n != 0 {
		t.Errorf("the lane handed %d connections to net/http; want none", n)
	}
}

// startStockDjango runs a project exactly as django-admin startproject makes it under gunicorn on a unix
// socket and returns the socket's path.
func startStockDjango(t *testing.T) string {
	t.Helper()
	dir := testpeer.StartProject(t, "mysite")
	sock := testpeer.SocketPath(t, "django.sock")
	testpeer.StartGunicorn(t, dir, "mysite.wsgi", "unix:"+sock)
	return sock
}
