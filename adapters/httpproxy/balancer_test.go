package httpproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/internal/leakcheck"
	"github.com/switchyard/switchyard/internal/testpeer"
	"github.com/switchyard/switchyard/reqinfo"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// backend is a real loopback app that names itself in X-Backend and counts its requests.
type backend struct {
	srv     *httptest.Server
	hits    atomic.Int64
	healthy atomic.Bool
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{}
	b.healthy.Store(true)
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			if !b.healthy.Load() {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Body", string(body))
		io.WriteString(w, name)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// deadSocket is an instance nobody listens on: dialing it fails at once.
func deadSocket(t testing.TB) string {
	return "unix://" + testpeer.SocketPath(t, "dead.sock")
}

// build makes the app raw through a registry, as the gateway does, and serves it on a loopback front.
func build(t testing.TB, raw string) (*Proxy, *httptest.Server, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	reg := adapters.NewRegistry(slog.New(slog.NewTextHandler(logs, nil)))
	reg.MustRegister(Kind())
	tg, _, err := reg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := reg.Build(tg)
	if err != nil {
		t.Fatal(err)
	}
	p := h.(*Proxy)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = reqinfo.Attach(r)
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { front.Close(); p.Close() })
	return p, front, logs
}

func client(t testing.TB) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend")
}

func list(bs ...*backend) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.srv.URL)
	}
	return strings.Join(s, "|")
}

func TestDistributionPerPolicy(t *testing.T) {
	tests := []struct {
		name, opts string
		check      func(t *testing.T, counts map[string]int)
	}{
		{name: "round robin gives each of three instances a third", opts: "", check: func(t *testing.T, c map[string]int) {
			if c["a"] != 20 || c["b"] != 20 || c["c"] != 20 {
				t.Errorf("counts = %v", c)
			}
		}},
		{name: "least requests reaches every instance", opts: "?lb=least_requests", check: func(t *testing.T, c map[string]int) {
			if c["a"] == 0 || c["b"] == 0 || c["c"] == 0 {
				t.Errorf("counts = %v", c)
			}
		}},
		{name: "p2c reaches every instance", opts: "?lb=p2c", check: func(t *testing.T, c map[string]int) {
			if c["a"] == 0 || c["b"] == 0 || c["c"] == 0 {
				t.Errorf("counts = %v", c)
			}
		}},
		{name: "first keeps to the first instance", opts: "?lb=first", check: func(t *testing.T, c map[string]int) {
			if c["a"] != 60 {
				t.Errorf("counts = %v", c)
			}
		}},
		{name: "hash by header keeps one user on one instance", opts: "?lb=hash&hash_key=header:X-User", check: func(t *testing.T, c map[string]int) {
			if len(c) != 1 {
				t.Errorf("one user spread over %v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
			_, front, _ := build(t, list(a, b, c)+tt.opts)
			cl := client(t)
			counts := map[string]int{}
			for range 60 {
				code, who := get(t, cl, front.URL+"/x", "X-User", "alice")
				if code != 200 {
					t.Fatalf("status %d", code)
				}
				counts[who]++
			}
			tt.check(t, counts)
		})
	}
}

func TestActiveHealthTakesAFailingInstanceOutWithinOneInterval(t *testing.T) {
	a, b := newBackend(t, "a"), newBackend(t, "b")
	p, front, logs := build(t, list(a, b)+"?health_path=/healthz&health_interval=50ms&health_timeout=5s")
	waitFor(t, "first health checks", func() bool { h := p.Health(); return h[0].Known && h[1].Known })
	b.healthy.Store(false)
	waitFor(t, "b marked down", func() bool { return !p.Health()[1].Healthy })
	cl := client(t)
	before := b.hits.Load()
	for range 20 {
		if code, who := get(t, cl, front.URL+"/"); code != 200 || who != "a" {
			t.Fatalf("got %d from %q while b is down", code, who)
		}
	}
	if b.hits.Load() != before {
		t.Fatal("traffic reached the instance failing its health check")
	}
	if !strings.Contains(logs.String(), "failing its health check") {
		t.Errorf("no log line for the state change:\n%s", logs)
	}
	b.healthy.Store(true)
	waitFor(t, "b back", func() bool { return p.Health()[1].Healthy })
}

// waitFor polls cond (health state changes on a timer; there is no signal to wait on) with a bounded
// deadline: one 50ms interval plus generous slack for -race on a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPassiveEjectionAndRecovery(t *testing.T) {
	a := newBackend(t, "a")
	sock := testpeer.SocketPath(t, "b.sock")
	p, front, logs := build(t, "unix://"+sock+"|"+a.srv.URL+"?lb=first&fail_timeout=2s") // long enough that b is still ejected when Health is read
	cl := client(t)
	// b is dead: the first request fails over to a and ejects b.
	if code, who := get(t, cl, front.URL+"/"); code != 200 || who != "a" {
		t.Fatalf("got %d from %q", code, who)
	}
	if h := p.Health()[0]; h.Healthy || h.LastError == "" {
		t.Fatalf("dead instance not ejected: %+v", h)
	}
	if !strings.Contains(logs.String(), "instance ejected") {
		t.Errorf("no ejection log line:\n%s", logs)
	}
	if h := p.Health(); h[0].Retries != 1 || h[0].Ejections != 1 || h[1].Retries != 0 || h[1].Ejections != 0 {
		t.Errorf("counters: dead %+v, live %+v; want one retry and one ejection on the dead one", h[0], h[1])
	}
	// b comes up; after fail_timeout the half-open trial reaches it and it takes the traffic again.
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Header().Set("X-Backend", "b") })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	waitFor(t, "b back after fail_timeout", func() bool {
		_, who := get(t, cl, front.URL+"/")
		return who == "b"
	})
	if !p.Health()[0].Healthy {
		t.Fatalf("b not healthy after a successful trial: %+v", p.Health()[0])
	}
	_ = os.Remove(sock)
}

func TestKillingOneOfThreeInstancesUnderLoadLosesNoIdempotentRequest(t *testing.T) {
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	_, front, _ := build(t, list(a, b, c))
	cl := client(t)
	const workers, each = 8, 60
	var done atomic.Int64
	var killOnce sync.Once
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				// Bodiless idempotent requests: a request whose body bytes were already sent when its
				// connection died is (rightly) not retried, so it has no place in a "loses nothing" test.
				method := []string{"GET", "HEAD", "DELETE", "OPTIONS"}[(w+i)%4]
				req, _ := http.NewRequest(method, front.URL+"/item", nil)
				resp, err := cl.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("%s: status %d", method, resp.StatusCode)
				}
				if done.Add(1) == workers*each/3 {
					// Kill b mid-run: its listener and every connection, in-flight ones included.
					killOnce.Do(func() { b.srv.Config.Close() })
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if b.hits.Load() == 0 {
		t.Fatal("b never took traffic: the kill was not mid-run")
	}
}

// flakyBackend accepts connections and closes them without answering, counting the requests it read.
func flakyBackend(t *testing.T) (string, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &n
}

func TestRetryBudgetCapsRetries(t *testing.T) {
	u1, n1 := flakyBackend(t)
	u2, n2 := flakyBackend(t)
	u3, n3 := flakyBackend(t)
	p, front, logs := build(t, u1+"|"+u2+"|"+u3+"?max_fails=0&retries=2&retry_budget=0&retry_budget_min=5")
	cl := client(t)
	for range 20 {
		if code, _ := get(t, cl, front.URL+"/"); code != http.StatusBadGateway {
			t.Fatalf("status %d, want 502", code)
		}
	}
	total := n1.Load() + n2.Load() + n3.Load()
	if total != 20+5 {
		t.Fatalf("instances saw %d attempts for 20 requests, want 20 + a budget of 5 retries", total)
	}
	if !strings.Contains(logs.String(), "retry budget exhausted") {
		t.Errorf("no log line for the exhausted budget")
	}
	var retries, refused uint64
	for _, h := range p.Health() {
		retries += h.Retries
		refused += h.RetryBudgetExhausted
	}
	// At most two requests used two retries each and ended on the retry count; every other one ended on
	// the budget.
	if retries != 5 || refused < 18 || refused > 20 {
		t.Errorf("counted %d retries and %d refused by the budget, want 5 and 18..20", retries, refused)
	}
}

func TestRetriesGoToAnotherInstanceOnlyWhenSafe(t *testing.T) {
	a := newBackend(t, "a")
	dead := deadSocket(t)
	_, front, _ := build(t, dead+"|"+a.srv.URL+"?lb=first&max_fails=0")
	cl := client(t)
	do := func(method, body string, hdr ...string) (int, *http.Response) {
		req, _ := http.NewRequest(method, front.URL+"/", strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp
	}
	if code, resp := do("PUT", "the whole body"); code != 200 || resp.Header.Get("X-Body") != "the whole body" {
		t.Fatalf("PUT after a dial error: %d, body seen %q", code, resp.Header.Get("X-Body"))
	}
	// A dial error means nothing reached any instance: even POST is safe to send elsewhere.
	if code, _ := do("POST", "p"); code != 200 {
		t.Fatalf("POST after a dial error: %d", code)
	}
	if code, _ := do("POST", "p", "Idempotency-Key", "k1"); code != 200 {
		t.Fatalf("POST with Idempotency-Key: %d", code)
	}
}

func TestPostIsNotRetriedAfterTheConnectionBroke(t *testing.T) {
	u1, n1 := flakyBackend(t)
	a := newBackend(t, "a")
	_, front, _ := build(t, u1+"|"+a.srv.URL+"?lb=first&max_fails=0")
	cl := client(t)
	resp, err := cl.Post(front.URL+"/", "text/plain", strings.NewReader("order"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || a.hits.Load() != 0 || n1.Load() != 1 {
		t.Fatalf("POST: status %d, a saw %d, flaky saw %d: a non-idempotent request was sent twice", resp.StatusCode, a.hits.Load(), n1.Load())
	}
}

func TestAllInstancesDown(t *testing.T) {
	t.Run("dead instances give 502 with the cause logged", func(t *testing.T) {
		_, front, logs := build(t, deadSocket(t)+"|"+deadSocket(t))
		if code, _ := get(t, client(t), front.URL+"/"); code != http.StatusBadGateway {
			t.Fatalf("status %d", code)
		}
		if l := logs.String(); !strings.Contains(l, "upstream request failed") || !strings.Contains(l, "connect") {
			t.Fatalf("log does not name the cause:\n%s", l)
		}
	})
	t.Run("every instance failing its health check gives 503 saying so", func(t *testing.T) {
		a, b := newBackend(t, "a"), newBackend(t, "b")
		a.healthy.Store(false)
		b.healthy.Store(false)
		p, front, logs := build(t, list(a, b)+"?health_path=/healthz&health_interval=50ms&health_timeout=5s")
		waitFor(t, "both down", func() bool { h := p.Health(); return !h[0].Healthy && !h[1].Healthy })
		if code, _ := get(t, client(t), front.URL+"/"); code != http.StatusServiceUnavailable {
			t.Fatalf("status %d", code)
		}
		if l := logs.String(); !strings.Contains(l, "no available instance (of 2: 2 failing the health check)") {
			t.Fatalf("log does not say why:\n%s", l)
		}
	})
	t.Run("every breaker open gives 503 saying so", func(t *testing.T) {
		u1, _ := flakyBackend(t)
		u2, _ := flakyBackend(t)
		_, front, logs := build(t, u1+"|"+u2+"?breaker=true&breaker_failures=2&max_fails=0&retries=0")
		cl := client(t)
		for range 4 {
			if code, _ := get(t, cl, front.URL+"/"); code != http.StatusBadGateway {
				t.Fatalf("status %d while the breakers close", code)
			}
		}
		if code, _ := get(t, cl, front.URL+"/"); code != http.StatusServiceUnavailable {
			t.Fatalf("status %d with both breakers open", code)
		}
		if l := logs.String(); !strings.Contains(l, "2 circuit breaker open") || !strings.Contains(l, "circuit breaker state changed") {
			t.Fatalf("log does not say why:\n%s", l)
		}
	})
}

func TestUpstreamIsRecordedForTheAccessLog(t *testing.T) {
	a := newBackend(t, "a")
	for _, raw := range []string{a.srv.URL, deadSocket(t) + "|" + a.srv.URL + "?lb=first"} {
		reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
		reg.MustRegister(Kind())
		tg, _, err := reg.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		h, err := reg.Build(tg)
		if err != nil {
			t.Fatal(err)
		}
		r, info := reqinfo.Attach(httptest.NewRequest("GET", "/", nil))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		h.(*Proxy).Close()
		if w.Code != 200 || info.Snapshot().Upstream != strings.TrimPrefix(a.srv.URL, "http://") {
			t.Fatalf("%s: status %d, upstream %q", raw, w.Code, info.Snapshot().Upstream)
		}
	}
}

func TestOptionErrors(t *testing.T) {
	reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
	reg.MustRegister(Kind())
	for _, tt := range []struct{ name, raw, want string }{
		{"instances must share the path prefix", "http://a:1/x|http://b:1/y", "share the path prefix"},
		{"an unknown policy is refused", "http://a:1|http://b:1?lb=nope", "lb="},
		{"a bad instance is named", "http://a:1|unix://host/x.sock", `instance "unix://host/x.sock"`},
		{"a misspelt policy gets the one it resembles", "http://a:1|http://b:1?lb=least_request", `option lb="least_request": expected one of round_robin, least_requests, p2c, hash, first; did you mean least_requests?`},
		// One problem, one message, with the value given.
		{"a zero health interval is that alone", "http://a:1?health_path=/h&health_interval=0s", `option health_interval=0s: expected at least 1ms, such as 5s`},
		{"a zero health timeout", "http://a:1?health_path=/h&health_timeout=0s", `option health_timeout=0s: expected a positive duration such as 2s`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg, _, err := reg.Parse(tt.raw)
			if err == nil {
				_, err = reg.Build(tg)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
			if strings.Contains(tt.raw, "health_interval") && strings.Contains(err.Error(), "health_timeout") {
				t.Fatalf("error = %v: a problem of health_interval alone", err)
			}
		})
	}
}

func BenchmarkProxy(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("%d instances", n), func(b *testing.B) {
			var bs []*backend
			for i := range n {
				bs = append(bs, newBackend(b, fmt.Sprint(i)))
			}
			p, _, _ := build(b, list(bs...))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequestWithContext(context.Background(), "GET", "/x", nil)
					w := httptest.NewRecorder()
					p.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

func TestHealthCheckHost(t *testing.T) {
	tests := []struct {
		name, option string
		want         func(srv *httptest.Server) string
	}{
		{name: "the check carries health_host as Host", option: "&health_host=app.example.com",
			want: func(*httptest.Server) string { return "app.example.com" }},
		{name: "without health_host the check carries the instance's own host", option: "",
			want: func(srv *httptest.Server) string { return strings.TrimPrefix(srv.URL, "http://") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hosts := make(chan string, 16)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/healthz" {
					select {
					case hosts <- r.Host:
					default:
					}
				}
			}))
			t.Cleanup(srv.Close)
			build(t, srv.URL+"?health_path=/healthz&health_interval=1h"+tt.option) // the first check runs at once
			select {
			case got := <-hosts:
				if want := tt.want(srv); got != want {
					t.Fatalf("health check Host = %q, want %q", got, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no health check arrived")
			}
		})
	}
}

func TestConnectOnlyCheckOfOneInstance(t *testing.T) {
	b := newBackend(t, "a")
	b.healthy.Store(false) // its /healthz fails: a connect-only check does not ask it
	p, front, _ := build(t, b.srv.URL+"?health_check=connect&health_interval=50ms&health_timeout=5s")
	waitFor(t, "the first check", func() bool { return p.Health()[0].Known })
	if h := p.Health()[0]; !h.Healthy {
		t.Fatalf("a listening app failed its connect check: %+v", h)
	}
	cl := client(t)
	if code, who := get(t, cl, front.URL+"/"); code != 200 || who != "a" {
		t.Fatalf("got %d from %q", code, who)
	}
	b.srv.Close()
	waitFor(t, "the closed app taken out", func() bool { return !p.Health()[0].Healthy })
	if code, _ := get(t, cl, front.URL+"/"); code != http.StatusServiceUnavailable {
		t.Fatalf("the only instance fails its check: %d, want 503", code)
	}
}

func TestReachDialsTheNamedInstance(t *testing.T) {
	b := newBackend(t, "a")
	dead := deadSocket(t)
	p, _, _ := build(t, b.srv.URL+"|"+dead)
	ctx := t.Context()
	if err := p.Reach(ctx, b.srv.URL); err != nil {
		t.Fatalf("a listening instance: %v", err)
	}
	if err := p.Reach(ctx, dead); err == nil {
		t.Fatal("a dead socket was reached")
	}
	if err := p.Reach(ctx, "http://elsewhere"); err == nil {
		t.Fatal("an instance the app does not have was reached")
	}
}

// An idempotent request with a body, sent on a reused connection to an instance that dies with it, is
// sent again on a new connection to that instance (the app's client's own retry of a stale
// connection); when that connect fails, the body was already sent: the request may not go to another
// instance (its body is spent, and the healthy instance would be blamed for the short body it gets),
// and the client gets the 502 of the failure. A GET, without a body, goes on to the other instance.
func TestABodySentBeforeADialErrorIsNotSentElsewhere(t *testing.T) {
	for _, mode := range []string{"direct", "relayed"} {
		t.Run(mode, func(t *testing.T) {
			for _, tc := range []struct {
				method, body string
				want         int
			}{{"PUT", "the body", http.StatusBadGateway}, {"GET", "", http.StatusOK}} {
				dying, kill := testpeer.DyingApp(t)
				b := newBackend(t, "b")
				p, front, logs := build(t, dying+"|"+b.srv.URL+"?lb=first")
				p.noDirect = mode == "relayed"
				cl := client(t)
				if code, _ := get(t, cl, front.URL+"/warm"); code != 200 {
					t.Fatalf("warm-up: %d", code)
				}
				kill()
				req, _ := http.NewRequest(tc.method, front.URL+"/x", strings.NewReader(tc.body))
				resp, err := cl.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("%s: %d; want %d\n%s", tc.method, resp.StatusCode, tc.want, logs)
				}
				if h := p.Health(); h[1].ConsecutiveFailures != 0 || h[1].Unavailable != "" {
					t.Errorf("%s: the healthy instance was blamed: %+v\n%s", tc.method, h[1], logs)
				}
				if tc.method == "PUT" && b.hits.Load() != 0 {
					t.Errorf("PUT: the other instance got the request without its body")
				}
			}
		})
	}
}
