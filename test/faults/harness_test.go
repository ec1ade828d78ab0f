package faults

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// fastLane is GATEWAY_FAST_LANE for the gateways startGateway starts (unless a test sets it): TestMain runs
// the whole suite with the lane off, then again with it on, where the lane exists.
var fastLane bool

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && fastlane.Supported {
		fmt.Println("faults: the suite again with GATEWAY_FAST_LANE=true")
		fastLane = true
		code = m.Run()
	}
	os.Exit(code)
}

// testGateway is a gateway served on loopback the way cmd/gateway serves it.
type testGateway struct {
	addr string
	lim  *connlimit.Listener
	logs *adaptertest.LogBuffer
}

// startGateway loads env (plus, when yamlFile is not "", a configuration file with that content), builds
// the gateway with the built-in adapters and serves it on 127.0.0.1:0 behind the connection limits.
// Everything stops when the test ends; the gateway's log is printed if the test failed.
func startGateway(t *testing.T, env map[string]string, yamlFile string) *testGateway {
	t.Helper()
	env = clone(env)
	env["GATEWAY_ADDR"] = "127.0.0.1:0"
	env["GATEWAY_ADMIN_ADDR"] = ""
	if _, set := env["GATEWAY_FAST_LANE"]; !set {
		env["GATEWAY_FAST_LANE"] = strconv.FormatBool(fastLane)
	}
	if yamlFile != "" {
		env["GATEWAY_CONFIG"] = "faults.yaml"
	}
	cfg, err := config.Load(env, func(string) ([]byte, error) { return []byte(yamlFile), nil })
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	logs := &adaptertest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	front := gateway.NewFront(cfg, g.Handler, ln, logger, gateway.FrontOptions{}) // the binary's stack
	srv, lim := front.Server, front.Limits
	served := make(chan struct{})
	go func() {
		defer close(served)
		front.Serve()
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
		g.Close()
		if t.Failed() {
			var lines []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if !strings.Contains(l, "path=/healthy/") { // the bystander's thousands of lines
					lines = append(lines, l)
				}
			}
			t.Logf("GATEWAY_FAST_LANE=%s; gateway log (healthy route omitted):\n%s", env["GATEWAY_FAST_LANE"], strings.Join(lines, "\n"))
		}
	})
	return &testGateway{addr: ln.Addr().String(), lim: lim, logs: logs}
}

func clone(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// result is what a raw client saw.
type result struct {
	status  int
	header  http.Header
	body    []byte
	bodyErr error         // error reading the body to its end (nil: the body looked complete)
	err     error         // error before a status line arrived
	elapsed time.Duration // from sending the request to the end of the body
}

func (r result) String() string {
	if r.err != nil {
		return fmt.Sprintf("no answer (%v) after %v", r.err, r.elapsed.Round(time.Millisecond))
	}
	return fmt.Sprintf("%d with %d body bytes (body error %v) after %v", r.status, len(r.body), r.bodyErr, r.elapsed.Round(time.Millisecond))
}

// rawDo dials the gateway, writes req as it is, and reads one response with its body, all within limit.
func rawDo(addr, req string, limit time.Duration) result {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, limit)
	if err != nil {
		return result{err: err}
	}
	defer c.Close()
	c.SetDeadline(start.Add(limit))
	if _, err := io.WriteString(c, req); err != nil {
		return result{err: err, elapsed: time.Since(start)}
	}
	return readResult(c, start)
}

func readResult(c net.Conn, start time.Time) result {
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return result{err: err, elapsed: time.Since(start)}
	}
	body, err := io.ReadAll(resp.Body)
	return result{status: resp.StatusCode, header: resp.Header, body: body, bodyErr: err, elapsed: time.Since(start)}
}

func get(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"
}

// fakeApp is an application on a raw TCP listener whose every connection is served by a function the test
// gives, which decides how to misbehave.
type fakeApp struct {
	url   string
	proto string   // "http", "uwsgi" or "fastcgi": how readRequest reads a request
	fcgi  sync.Map // *bufio.Reader -> *fcgiConn, for fastcgi: which writer a request's id goes to

	arrived chan struct{} // one value per request head read through readRequest
	done    chan struct{} // closed when the test ends: hanging fakes return
	proceed chan struct{} // closed by a mid-body client once it has the head and a first byte
	mu      sync.Mutex
	conns   []net.Conn
}

func startFake(t *testing.T, proto string, serve func(f *fakeApp, c net.Conn, br *bufio.Reader)) *fakeApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeApp{url: proto + "://" + ln.Addr().String(), proto: proto, arrived: make(chan struct{}, 64), done: make(chan struct{}), proceed: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				var w net.Conn = c
				if proto == "fastcgi" {
					fc := &fcgiConn{Conn: c}
					f.fcgi.Store(br, fc)
					defer f.fcgi.Delete(br)
					w = fc
				}
				serve(f, w, br)
			}()
		}
	}()
	t.Cleanup(func() {
		close(f.done)
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	return f
}

// readRequest reads one request (an HTTP head, or a uwsgi packet: 4-byte header, variables block) and its
// body, then signals arrived. For uwsgi it returns a request carrying only the body length.
func (f *fakeApp) readRequest(br *bufio.Reader) (*http.Request, error) {
	switch f.proto {
	case "uwsgi":
		return f.readUwsgi(br)
	case "fastcgi":
		return f.readFCGI(br)
	}
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, req.Body)
	f.arrived <- struct{}{}
	return req, nil
}

func (f *fakeApp) readUwsgi(br *bufio.Reader) (*http.Request, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, err
	}
	vars := make([]byte, int(hdr[1])|int(hdr[2])<<8)
	if _, err := io.ReadFull(br, vars); err != nil {
		return nil, err
	}
	var length int64
	for len(vars) >= 2 {
		kl := int(vars[0]) | int(vars[1])<<8
		if len(vars) < 2+kl+2 {
			return nil, fmt.Errorf("uwsgi: truncated variables")
		}
		k := string(vars[2 : 2+kl])
		vars = vars[2+kl:]
		vl := int(vars[0]) | int(vars[1])<<8
		if len(vars) < 2+vl {
			return nil, fmt.Errorf("uwsgi: truncated variables")
		}
		if k == "CONTENT_LENGTH" {
			length, _ = strconv.ParseInt(string(vars[2:2+vl]), 10, 64)
		}
		vars = vars[2+vl:]
	}
	if _, err := io.CopyN(io.Discard, br, length); err != nil {
		return nil, err
	}
	f.arrived <- struct{}{}
	return &http.Request{ContentLength: length}, nil
}

// waitArrived waits until the fake has read a request.
func (f *fakeApp) waitArrived(t *testing.T) {
	t.Helper()
	select {
	case <-f.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the app")
	}
}

// hang blocks until the test ends.
func (f *fakeApp) hang() { <-f.done }

// reset closes c with a TCP RST instead of a FIN (SO_LINGER 0).
func reset(c net.Conn) {
	if w, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = w.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// closedPort returns a loopback address nobody listens on (testpeer.ClosedPort).
func closedPort(t *testing.T) string { return testpeer.ClosedPort(t) }

// healthyApp answers every request 200 "ok"; echoApp reads the body and answers "got N".
func healthyApp(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)
	return srv.URL
}

func echoApp(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		io.WriteString(w, "got "+strconv.Itoa(len(b)))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// bystander is a client using the healthy route for the whole test: every answer must be 200 "ok".
type bystander struct {
	addr    string
	stop    chan struct{}
	stopped chan struct{}
	mu      sync.Mutex
	ok      int
	fails   []string
}

func startBystander(addr string) *bystander {
	b := &bystander{addr: addr, stop: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(b.stopped)
		pace := time.NewTicker(5 * time.Millisecond) // steady traffic, leaving the CPUs to the cases
		defer pace.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-pace.C:
			}
			b.record(rawDo(addr, get("/healthy/"), 5*time.Second))
		}
	}()
	return b
}

func (b *bystander) record(r result) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r.err == nil && r.bodyErr == nil && r.status == 200 && string(r.body) == "ok" {
		b.ok++
	} else {
		b.fails = append(b.fails, r.String())
	}
}

// check asserts one healthy request succeeds now (while a fault is in progress).
func checkHealthy(t *testing.T, addr string) {
	t.Helper()
	if r := rawDo(addr, get("/healthy/"), 5*time.Second); r.err != nil || r.bodyErr != nil || r.status != 200 {
		t.Errorf("the healthy route during the fault: %s, want 200", r)
	}
}

func (b *bystander) finish(t *testing.T) {
	t.Helper()
	close(b.stop)
	<-b.stopped
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.fails) > 0 {
		t.Errorf("the bystander on the healthy route got %d failures (of %d): %v", len(b.fails), len(b.fails)+b.ok, b.fails)
	}
	if b.ok == 0 {
		t.Errorf("the bystander got no answer at all")
	}
	t.Logf("bystander: %d healthy answers during the faults", b.ok)
}

// isAborted says whether a body read error is a cut stream (as opposed to none).
func isAborted(err error) bool {
	return err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "reset") || errors.Is(err, io.EOF))
}

// sysctlMax reads the third (maximum) field of a net.ipv4 tcp_[rw]mem sysctl; 0 when unreadable.
func sysctlMax(name string) int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0
	}
	n, _ := strconv.Atoi(f[2])
	return n
}
