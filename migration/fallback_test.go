package migration_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// syncBuffer is a log destination safe for the gateway's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildLogged is build with the gateway's log kept.
func buildLogged(t *testing.T, env map[string]string) (*gateway.Gateway, string, *syncBuffer) {
	t.Helper()
	env["GATEWAY_ADMIN_ADDR"] = ""
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	front := httptest.NewServer(g.Handler)
	t.Cleanup(func() {
		front.Close()
		g.Close()
	})
	return g, front.URL, logs
}

// closedPort returns a loopback address nobody listens on (testpeer.ClosedPort).
func closedPort(t *testing.T) string { return testpeer.ClosedPort(t) }

// acceptThenClose listens on loopback, reads each request's head and closes the connection without an
// answer: an app that received the request and then failed. It returns the address and the count of
// requests it read.
func acceptThenClose(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(c)
			if _, err := http.ReadRequest(br); err == nil {
				n.Add(1)
			}
			c.Close()
		}
	}()
	return ln.Addr().String(), &n
}

// hashApp is a real HTTP app that answers "NAME METHOD sha256 length" of the body it read.
func hashApp(t *testing.T, name string) (string, *atomic.Int64) {
	var n atomic.Int64
	u := app(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%s %s %x %d", name, r.Method, sha256.Sum256(b), len(b))
	})
	return u, &n
}

func hashOf(name, method string, body []byte) string {
	return fmt.Sprintf("%s %s %x %d", name, method, sha256.Sum256(body), len(body))
}

// TestCanaryFallsBackToTheOldAppWhenTheNewAppIsNotReached runs canary and primary routes whose new app
// cannot be reached (a closed port, a missing unix socket, for HTTP and uwsgi) or fails after accepting
// the request, with every client on the new side: what never reached the new app is the old app's, body
// whole, counted, logged once; what reached it stays a 502.
func TestCanaryFallsBackToTheOldAppWhenTheNewAppIsNotReached(t *testing.T) {
	dir := t.TempDir()
	big := make([]byte, 256<<10)
	rand.Read(big)
	small := []byte("name=Ann&qty=2")
	accepted, acceptedCount := acceptThenClose(t)
	tests := []struct {
		name      string
		newApp    string // the new app's URL, without options
		stage     string // query of the stage keys
		bodyLimit string // GATEWAY_CASCADE_BODY_LIMIT, "" for the default
		method    string
		body      []byte
		fellBack  bool
	}{
		{"a GET to a closed port is served by the old app", "http://" + closedPort(t), "stage=canary&canary=100", "", "GET", nil, true},
		{"a POST to a missing unix socket reaches the old app whole", "unix://" + filepath.Join(dir, "missing.sock"), "stage=canary&canary=100", "", "POST", big, true},
		{"a PUT to a missing uwsgi socket reaches the old app whole", "uwsgi+unix://" + filepath.Join(dir, "uwsgi.sock"), "stage=canary&canary=100", "", "PUT", small, true},
		{"a DELETE at the primary stage is served by the old app", "http://" + closedPort(t), "stage=primary", "", "DELETE", nil, true},
		{"a body too large to hold, untouched, reaches the old app whole", "http://" + closedPort(t), "stage=canary&canary=100", "1KiB", "POST", big, true},
		{"a body the gateway never holds, untouched, reaches the old app whole", "http://" + closedPort(t), "stage=canary&canary=100", "0", "POST", small, true},
		{"a POST the new app accepted and then failed is a 502", "http://" + accepted, "stage=canary&canary=100", "", "POST", small, false},
		{"a GET the new app accepted and then failed at the primary stage is a 502", "http://" + accepted, "stage=primary", "", "GET", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			oldURL, oldCount := hashApp(t, "old")
			before := acceptedCount.Load()
			env := map[string]string{
				"GATEWAY_ROUTES": "/shop/=" + tc.newApp + "?name=new&" + tc.stage + "&old=" + url.QueryEscape(oldURL+"?name=old"),
			}
			if tc.bodyLimit != "" {
				env["GATEWAY_CASCADE_BODY_LIMIT"] = tc.bodyLimit
			}
			g, front, logs := buildLogged(t, env)
			var body io.Reader
			if tc.body != nil {
				body = bytes.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, front+"/shop/cart", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()

			rt := routeOf(t, report(t, g), "/shop/")
			warns := strings.Count(logs.String(), `msg="app not reached: the next app serves the request"`)
			if !tc.fellBack {
				if resp.StatusCode != http.StatusBadGateway || oldCount.Load() != 0 || rt.FellBack != 0 || warns != 0 {
					t.Fatalf("got %d %q, old asked %d times, fell_back %d, %d fall-back lines; want 502, old never asked, nothing counted", resp.StatusCode, got, oldCount.Load(), rt.FellBack, warns)
				}
				if acceptedCount.Load() == before {
					t.Fatal("the new app never read the request: the case does not test what it names")
				}
				return
			}
			if want := hashOf("old", tc.method, tc.body); resp.StatusCode != 200 || string(got) != want {
				t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, got, want)
			}
			if rt.FellBack != 1 || oldCount.Load() != 1 {
				t.Fatalf("fell_back %d, old asked %d times; want 1 and 1", rt.FellBack, oldCount.Load())
			}
			if warns != 1 || !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "route=/shop/ app=new") ||
				!strings.Contains(logs.String(), "next=old") {
				t.Fatalf("want one warning naming the route and the apps, log:\n%s", logs)
			}
			if strings.Contains(logs.String(), `msg="upstream request failed"`) {
				t.Fatalf("the failure was logged as well as the fall back, log:\n%s", logs)
			}
			if n := fellBackMetric(t, g); n != 1 {
				t.Fatalf("switchyard_migration_fell_back_total{route=\"/shop/\"} = %v, want 1", n)
			}
		})
	}
}

// TestCanaryFallBackKeepsTheClientsSide: a client put on the new side whose request fell back to the old
// app keeps its sticky cookie and side, and is served by the new app as soon as it is up again.
func TestCanaryFallBackKeepsTheClientsSide(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "new.sock")
	oldURL, _ := hashApp(t, "old")
	g, front, _ := buildLogged(t, map[string]string{
		"GATEWAY_ROUTES": "/shop/=unix://" + sock + "?name=new&stage=canary&canary=100&old=" + url.QueryEscape(oldURL+"?name=old"),
	})
	resp, err := http.Get(front + "/shop/")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != 200 || string(got) != hashOf("old", "GET", nil) || len(cookies) != 1 || cookies[0].Name != "switchyard_canary" {
		t.Fatalf("first request: got %d %q cookies %v; want the old app's answer and the sticky cookie", resp.StatusCode, got, cookies)
	}

	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	req, _ := http.NewRequest("GET", front+"/shop/", nil)
	req.AddCookie(cookies[0])
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "new" || len(resp.Cookies()) != 0 {
		t.Fatalf("second request: got %d %q cookies %v; want the new app's answer and no new cookie", resp.StatusCode, got, resp.Cookies())
	}
	if rt := routeOf(t, report(t, g), "/shop/"); rt.FellBack != 1 {
		t.Fatalf("fell_back %d, want 1", rt.FellBack)
	}
	page := httptest.NewRecorder()
	g.Admin["/migration"].ServeHTTP(page, httptest.NewRequest("GET", "/migration", nil))
	if !strings.Contains(page.Body.String(), `fell back to old: <b class="fell-back">1</b>`) {
		t.Fatalf("the report page does not say the request fell back:\n%s", page.Body)
	}
}

// fellBackMetric reads switchyard_migration_fell_back_total{route="/shop/"} from the gateway's collectors.
func fellBackMetric(t *testing.T, g *gateway.Gateway) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(g.Collectors...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "switchyard_migration_fell_back_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" && l.GetValue() == "/shop/" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatal("no switchyard_migration_fell_back_total series for /shop/")
	return 0
}

// TestCanaryFallsBackWhenNoInstanceOfTheNewAppIsLeft: a new app of two instances, both refusing: the first
// request's dials fail and eject them, the next finds no instance at all (503 without a fall back); both
// are the old app's.
func TestCanaryFallsBackWhenNoInstanceOfTheNewAppIsLeft(t *testing.T) {
	oldURL, oldCount := hashApp(t, "old")
	g, front, logs := buildLogged(t, map[string]string{
		"GATEWAY_ROUTES": "/shop/=http://" + closedPort(t) + "|http://" + closedPort(t) + "?name=new&stage=canary&canary=100&old=" + url.QueryEscape(oldURL+"?name=old"),
	})
	for i := range 2 {
		req, _ := http.NewRequest("POST", front+"/shop/cart", strings.NewReader("qty=1"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := hashOf("old", "POST", []byte("qty=1")); resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("request %d: got %d %q, want 200 %q", i, resp.StatusCode, got, want)
		}
	}
	if rt := routeOf(t, report(t, g), "/shop/"); rt.FellBack != 2 || oldCount.Load() != 2 {
		t.Fatalf("fell_back %d, old asked %d times; want 2 and 2", rt.FellBack, oldCount.Load())
	}
	if !strings.Contains(logs.String(), `upstream="(all instances)" next=old method=POST path=/shop/cart cause="no available instance`) {
		t.Fatalf("the second request did not fall back on no instance, log:\n%s", logs)
	}
}

// TestNegativeCacheDoesNotRememberARequestTheNewAppNeverReceived: at the primary stage with a negative
// cache, requests that fell back because the new app was down are not misses: once it is up, it serves the
// same path at once.
func TestNegativeCacheDoesNotRememberARequestTheNewAppNeverReceived(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "new.sock")
	oldURL, _ := hashApp(t, "old")
	g, front, _ := buildLogged(t, map[string]string{
		"GATEWAY_ROUTES": "/shop/=unix://" + sock + "?name=new&stage=primary&negative_cache=100&negative_cache_ttl=1h&old=" + url.QueryEscape(oldURL+"?name=old"),
	})
	for range 2 {
		if status, body, _ := fetch(t, front+"/shop/item/1"); status != 200 || body != hashOf("old", "GET", nil) {
			t.Fatalf("got %d %q, want the old app's answer", status, body)
		}
	}
	rt := routeOf(t, report(t, g), "/shop/")
	if rt.FellBack != 2 || rt.NegativeCache == nil || rt.NegativeCache.Entries != 0 || rt.NegativeCache.Saved != 0 {
		t.Fatalf("fell_back %d, negative cache %+v; want 2 and nothing remembered", rt.FellBack, rt.NegativeCache)
	}

	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	if status, body, _ := fetch(t, front+"/shop/item/1"); status != 200 || body != "new" {
		t.Fatalf("once the new app is up: got %d %q, want its answer", status, body)
	}
}
