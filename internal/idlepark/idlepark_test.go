//go:build linux

package idlepark

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/leakcheck"
	"go.uber.org/goleak"
)

const after = 20 * time.Millisecond

type rig struct {
	srv *http.Server
	ln  *Listener
	lim *connlimit.Listener
}

// start serves h on a loopback port through connlimit (max, 0: none) and a parking Listener that parks
// after the package's short delay.
func start(t *testing.T, h http.Handler, idle time.Duration, max int) *rig {
	t.Helper()
	return startParking(t, h, idle, max, after)
}

// startParking is start with the park delay parkAfter.
func startParking(t *testing.T, h http.Handler, idle time.Duration, max int, parkAfter time.Duration) *rig {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := connlimit.New(raw, connlimit.Options{Max: max, Reply: true})
	ln, err := New(lim, Options{After: parkAfter})
	if err != nil {
		t.Fatal(err)
	}
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(body))
		})
	}
	srv := &http.Server{Handler: h, IdleTimeout: idle, ReadHeaderTimeout: 5 * time.Second}
	ln.Install(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return &rig{srv: srv, ln: ln, lim: lim}
}

// waitFor polls cond (a counter the code under test keeps) until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

type client struct {
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, r *rig) *client {
	t.Helper()
	c, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &client{c: c, br: bufio.NewReader(c)}
}

func (c *client) send(t *testing.T, raw string) {
	t.Helper()
	if _, err := io.WriteString(c.c, raw); err != nil {
		t.Fatal(err)
	}
}

func (c *client) expect(t *testing.T, body string) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != body || resp.StatusCode != 200 {
		t.Fatalf("got %d %q (%v), want 200 %q", resp.StatusCode, b, err, body)
	}
}

// expectEOF waits for the server to close the connection.
func (c *client) expectEOF(t *testing.T) {
	t.Helper()
	b, err := c.br.ReadByte()
	if err == nil {
		t.Fatalf("read %q, want the connection closed", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection was not closed")
	}
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

func TestParkedConnectionServesItsNextRequests(t *testing.T) {
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
	r := start(t, nil, time.Minute, 0)
	c := dial(t, r)
	for i := range 5 {
		c.send(t, get(fmt.Sprintf("/r%d", i)))
		c.expect(t, fmt.Sprintf("GET /r%d 0", i))
		waitFor(t, "the connection parked", func() bool { return r.ln.ParkedTotal() == uint64(i+1) && r.ln.Parked() == 1 })
	}
	// A POST with a body after a park, then one more cycle.
	c.send(t, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	c.expect(t, "POST /p 5")
	if got := r.lim.Stats().Open; got != 1 {
		t.Fatalf("connlimit counts %d open connections, want 1 (a re-delivered connection is not admitted twice)", got)
	}
	c.c.Close()
	waitFor(t, "the connection reaped", func() bool { return r.lim.Stats().Open == 0 && r.ln.Parked() == 0 })
	r.srv.Close()
}

func TestPipelinedBytesAreNeverParked(t *testing.T) {
	tests := []struct {
		name, first, rest, want2 string
	}{
		{"a second request cut after two bytes stays with net/http", get("/a") + "GE", "T /b HTTP/1.1\r\nHost: x\r\n\r\n", "GET /b 0"},
		{"a second request cut mid-header stays with net/http", get("/a") + "GET /b HTTP/1.1\r\nHo", "st: x\r\n\r\n", "GET /b 0"},
		{"a request whose body is late is not parked", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nab", "c", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := start(t, nil, time.Minute, 0)
			c := dial(t, r)
			c.send(t, tt.first)
			if tt.want2 != "" {
				c.expect(t, "GET /a 0")
			}
			// Proving an absence takes waiting: several park delays with the bytes held.
			time.Sleep(5 * after)
			if n := r.ln.ParkedTotal(); n != 0 {
				t.Fatalf("parked %d times with bytes buffered", n)
			}
			c.send(t, tt.rest)
			if tt.want2 != "" {
				c.expect(t, tt.want2)
			} else {
				c.expect(t, "POST /a 3")
			}
		})
	}
}

// TestARequestStartedBeforeTheParkMomentWaitsUnderTheIdleDeadline sends the first bytes of a request on
// an idle connection before the park delay and the rest well after it: the rest of the request line is
// read under the idle deadline (the park deadline, which the idle read had, must not cut it).
func TestARequestStartedBeforeTheParkMomentWaitsUnderTheIdleDeadline(t *testing.T) {
	// The first bytes follow each answer at once, yet must beat the park delay: 20ms is a scheduling
	// hiccup on a loaded machine (the connection would park between requests, not mid-request), so this
	// test parks after half a second.
	const parkAfter = 500 * time.Millisecond
	r := startParking(t, nil, time.Minute, 0, parkAfter)
	c := dial(t, r)
	c.send(t, get("/a"))
	c.expect(t, "GET /a 0")
	for _, first := range []string{"G", "GE", "GET /b HT"} {
		c.send(t, first)
		time.Sleep(2 * parkAfter) // the client pauses mid-request, past the park delay (what is under test)
		c.send(t, strings.TrimPrefix(get("/b"), first))
		c.expect(t, "GET /b 0")
	}
	if n := r.ln.ParkedTotal(); n != 0 {
		t.Fatalf("parked %d times mid-request", n)
	}
}

func TestRequestsAroundTheParkMomentAreNotLost(t *testing.T) {
	r := start(t, nil, time.Minute, 0)
	c := dial(t, r)
	c.send(t, get("/first"))
	c.expect(t, "GET /first 0")
	// Requests sent at delays spread around the park delay: some before it, some while the connection is
	// being handed over, some after it was parked. Every one must be answered.
	for i := range 60 {
		time.Sleep(after - 3*time.Millisecond + time.Duration(i)*100*time.Microsecond)
		c.send(t, get(fmt.Sprintf("/n%d", i)))
		c.expect(t, fmt.Sprintf("GET /n%d 0", i))
	}
	if r.ln.ParkedTotal() == 0 {
		t.Fatal("the connection never parked")
	}
}

func TestManyConnectionsAroundTheParkMomentLoseNothing(t *testing.T) {
	r := start(t, nil, time.Minute, 0)
	const conns, rounds = 40, 30
	errs := make(chan error, conns)
	for k := range conns {
		go func() {
			c, err := net.Dial("tcp", r.ln.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			br := bufio.NewReader(c)
			for i := range rounds {
				if i > 0 {
					time.Sleep(after - 4*time.Millisecond + time.Duration((k*rounds+i)%80)*100*time.Microsecond)
				}
				path := fmt.Sprintf("/c%d/r%d", k, i)
				if _, err := io.WriteString(c, get(path)); err != nil {
					errs <- err
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					errs <- fmt.Errorf("%s: %v", path, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "GET "+path+" 0" {
					errs <- fmt.Errorf("%s: got %q", path, b)
					return
				}
			}
			errs <- nil
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if r.ln.ParkedTotal() == 0 {
		t.Fatal("nothing was parked")
	}
	t.Logf("%d parks over %d requests", r.ln.ParkedTotal(), conns*rounds)
}

func TestParkedConnectionsEnd(t *testing.T) {
	t.Run("a parked connection closed by the client is reaped", func(t *testing.T) {
		r := start(t, nil, time.Minute, 0)
		c := dial(t, r)
		c.send(t, get("/"))
		c.expect(t, "GET / 0")
		waitFor(t, "parked", func() bool { return r.ln.Parked() == 1 })
		c.c.Close()
		waitFor(t, "reaped", func() bool { return r.ln.Parked() == 0 && r.lim.Stats().Open == 0 })
	})
	t.Run("a parked connection half-closed after a request is served", func(t *testing.T) {
		r := start(t, nil, time.Minute, 0)
		c := dial(t, r)
		c.send(t, get("/"))
		c.expect(t, "GET / 0")
		waitFor(t, "parked", func() bool { return r.ln.Parked() == 1 })
		c.send(t, get("/late"))
		c.c.(*net.TCPConn).CloseWrite()
		c.expect(t, "GET /late 0")
	})
	t.Run("the idle timeout closes a parked connection", func(t *testing.T) {
		r := start(t, nil, time.Second, 0)
		c := dial(t, r)
		c.send(t, get("/"))
		c.expect(t, "GET / 0")
		waitFor(t, "parked", func() bool { return r.ln.Parked() == 1 })
		c.expectEOF(t)
		waitFor(t, "released", func() bool { return r.ln.Parked() == 0 && r.lim.Stats().Open == 0 })
	})
	t.Run("an idle timeout shorter than the park delay never parks", func(t *testing.T) {
		r := start(t, nil, after/2, 0)
		c := dial(t, r)
		c.send(t, get("/"))
		c.expect(t, "GET / 0")
		c.expectEOF(t)
		if n := r.ln.ParkedTotal(); n != 0 {
			t.Fatalf("parked %d times", n)
		}
	})
	t.Run("Shutdown closes parked connections and returns", func(t *testing.T) {
		r := start(t, nil, time.Minute, 0)
		var cs []*client
		for range 5 {
			c := dial(t, r)
			c.send(t, get("/"))
			c.expect(t, "GET / 0")
			cs = append(cs, c)
		}
		waitFor(t, "parked", func() bool { return r.ln.Parked() == 5 })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		for _, c := range cs {
			c.expectEOF(t)
		}
		waitFor(t, "released", func() bool { return r.lim.Stats().Open == 0 })
	})
}

func TestHijackedConnectionsAreNotParked(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ws, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			typ, msg, err := ws.Read(req.Context())
			if err != nil {
				return
			}
			if err := ws.Write(req.Context(), typ, msg); err != nil {
				return
			}
		}
	})
	r := start(t, h, time.Minute, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+r.ln.Addr().String()+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for i := range 3 {
		msg := fmt.Sprintf("m%d", i)
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
		time.Sleep(5 * after) // an absence: quiet for several park delays
	}
	if n := r.ln.ParkedTotal(); n != 0 {
		t.Fatalf("a WebSocket connection was parked %d times", n)
	}
}

func TestParkedConnectionsHoldTheirConnectionLimitSlots(t *testing.T) {
	r := start(t, nil, time.Minute, 2)
	a, b := dial(t, r), dial(t, r)
	for _, c := range []*client{a, b} {
		c.send(t, get("/"))
		c.expect(t, "GET / 0")
	}
	waitFor(t, "two parked", func() bool { return r.ln.Parked() == 2 })
	if got := r.lim.Stats().Open; got != 2 {
		t.Fatalf("open %d, want 2 while parked", got)
	}
	third := dial(t, r)
	third.send(t, get("/third"))
	resp, err := http.ReadResponse(third.br, nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third connection got %v, %v; want the 503 refusal", resp, err)
	}
	a.c.Close()
	waitFor(t, "a slot freed", func() bool { return r.lim.Stats().Open == 1 })
	c := dial(t, r)
	c.send(t, get("/again"))
	c.expect(t, "GET /again 0")
	b.send(t, get("/b"))
	b.expect(t, "GET /b 0")
}

func TestABurstOfParkedConnectionsGetsItsGC(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := New(raw, Options{After: after, BurstGC: 8})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), IdleTimeout: time.Minute}
	ln.Install(srv)
	go srv.Serve(ln)
	defer srv.Close()
	start := gcCycles()
	for range 8 {
		c := dial(t, &rig{ln: ln})
		c.send(t, get("/"))
		c.expect(t, "ok")
	}
	waitFor(t, "eight parked", func() bool { return ln.Parked() == 8 })
	// The runtime may run cycles of its own too; at least the three requested ones must come.
	waitFor(t, "three GC cycles", func() bool { return gcCycles()-start >= 3 })
}

// A second burst soon after the first one's GC gets its own GC once the minimum interval has passed;
// before, it got none until the runtime's own, since no later connection would ask.
func TestABurstSoonAfterAnotherGetsItsGCLater(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := New(raw, Options{After: after, BurstGC: 4})
	if err != nil {
		t.Fatal(err)
	}
	ln.gcDelay, ln.gcEvery = 10*time.Millisecond, 500*time.Millisecond
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), IdleTimeout: time.Minute}
	ln.Install(srv)
	go srv.Serve(ln)
	defer srv.Close()
	burst := func(want int) {
		for range 4 {
			c := dial(t, &rig{ln: ln})
			c.send(t, get("/"))
			c.expect(t, "ok")
		}
		waitFor(t, "the burst parked", func() bool { return ln.Parked() == want })
	}
	burst(4)
	waitFor(t, "the first burst's GC", func() bool { return ln.gcs.Load() == 1 })
	burst(8)
	waitFor(t, "the second burst's GC", func() bool { return ln.gcs.Load() == 2 })
}

func TestMemoryPerParkedConnection(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	const n = 2000
	r := start(t, nil, time.Minute, 0)
	inuse := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	before := inuse()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	buf := make([]byte, 4096)
	for i := range n {
		c, err := net.Dial("tcp", r.ln.Addr().String())
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.WriteString(c, get("/")); err != nil {
			t.Fatal(err)
		}
		// The answer is small and comes in one segment on loopback; read until its body.
		got := ""
		for !strings.HasSuffix(got, "GET / 0") {
			k, err := c.Read(buf)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			got += string(buf[:k])
		}
	}
	waitFor(t, "every connection parked", func() bool { return r.ln.Parked() == n })
	after := inuse()
	per := (int64(after) - int64(before)) / n
	t.Logf("heap+stack in use: %d before, %d with %d parked connections: %d bytes each (client side included)", before, after, n, per)
	if per > 6<<10 {
		t.Fatalf("%d bytes per parked connection, want < 6 KiB", per)
	}
}

// TestAConnectionParkedByAWrapperComesBackThroughAccept is Park's contract for a listener wrapper that
// serves connections itself (the fast lane): the connection is held without its server, comes back from
// Accept when readable, keeps its connection-limit slot, and is closed at its idle deadline or by Close.
func TestAConnectionParkedByAWrapperComesBackThroughAccept(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := connlimit.New(raw, connlimit.Options{})
	ln, err := New(lim, Options{After: after})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.ParkAfter() != after {
		t.Fatalf("ParkAfter %v, want %v", ln.ParkAfter(), after)
	}
	accept := func() net.Conn {
		t.Helper()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	dialed := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	closed := func(c net.Conn) {
		t.Helper()
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read %v, want EOF", err)
		}
	}

	client := dialed()
	ln.Park(accept(), time.Time{})
	waitFor(t, "parked", func() bool { return ln.Parked() == 1 })
	io.WriteString(client, "ping")
	back := accept()
	buf := make([]byte, 4)
	if _, err := io.ReadFull(back, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("the delivered connection read %q (%v)", buf, err)
	}
	if open := lim.Stats().Open; open != 1 || ln.Parked() != 0 {
		t.Fatalf("%d open, %d parked; want 1 and 0", open, ln.Parked())
	}

	ln.Park(back, time.Now().Add(50*time.Millisecond))
	closed(client)
	waitFor(t, "released at the idle deadline", func() bool { return ln.Parked() == 0 && lim.Stats().Open == 0 })

	client = dialed()
	ln.Park(accept(), time.Time{})
	waitFor(t, "parked", func() bool { return ln.Parked() == 1 })
	ln.Close()
	closed(client)
	waitFor(t, "released by Close", func() bool { return lim.Stats().Open == 0 })
}
