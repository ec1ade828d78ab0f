//go:build linux

package fastlane

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// ioTimeout bounds every read and write of a test.
const ioTimeout = 5 * time.Second

// testRouter is a server handler that lets the lane serve the requests take accepts: lane-served answers
// carry "X-Path: lane", net/http-served ones "X-Path: net/http".
type testRouter struct {
	h    http.Handler
	take func(*http.Request) bool
}

func (tr testRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Path", "net/http")
	tr.h.ServeHTTP(w, r)
}

func (tr testRouter) LaneHandler(r *http.Request) (http.Handler, func()) {
	if tr.take != nil && !tr.take(r) {
		return nil, nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", "lane")
		tr.h.ServeHTTP(w, r)
	}), nil
}

// startLane serves tr through a lane on a loopback listener; everything stops at the test's end.
func startLane(t *testing.T, tr testRouter) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: tr, ReadHeaderTimeout: ioTimeout, IdleTimeout: ioTimeout}
	lane := New(ln, Options{Server: srv})
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lane) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return lane, ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c, bufio.NewReader(c)
}

func send(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

// answer reads one response and returns its X-Path and body.
func answer(t *testing.T, br *bufio.Reader, method string) (path, body string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return res.Header.Get("X-Path"), string(b)
}

var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	io.WriteString(w, r.Method+" "+r.RequestURI+" "+string(b))
})

func TestTheLaneServesWhatItTakesAndHandsOffTheRest(t *testing.T) {
	tests := []struct {
		name, req  string
		path, body string
	}{
		{"a GET the router takes", "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", "lane", "GET /a?b=c "},
		{"a POST the router takes", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody", "lane", "POST /p body"},
		{"a head the lane does not take", "POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n\r\n", "net/http", "POST /p body"},
		{"a request the router refuses", "GET /no HTTP/1.1\r\nHost: x\r\n\r\n", "net/http", "GET /no "},
		{"a body larger than the lane's limit", "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n" + strings.Repeat("z", 70000), "net/http", "POST /p " + strings.Repeat("z", 70000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lane, addr := startLane(t, testRouter{h: echo, take: func(r *http.Request) bool { return r.URL.Path != "/no" }})
			c, br := dial(t, addr)
			// The request in two writes: the lane must decide the same whether it reads one piece or both.
			send(t, c, tt.req[:len(tt.req)/2])
			send(t, c, tt.req[len(tt.req)/2:])
			path, body := answer(t, br, "GET")
			if path != tt.path || body != tt.body {
				t.Fatalf("served by %s with %.60q, want %s with %.60q", path, body, tt.path, tt.body)
			}
			if want := uint64(0); tt.path == "lane" && lane.HandedOff() != want || tt.path != "lane" && lane.HandedOff() != 1 {
				t.Fatalf("handed off %d connections", lane.HandedOff())
			}
		})
	}
}

func TestAConnectionMovesToNetHTTPAtItsFirstRequestTheLaneDoesNotTake(t *testing.T) {
	lane, addr := startLane(t, testRouter{h: echo})
	c, br := dial(t, addr)
	send(t, c, "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n") // pipelined: both to the lane
	for _, want := range []string{"GET /1 ", "GET /2 "} {
		if path, body := answer(t, br, "GET"); path != "lane" || body != want {
			t.Fatalf("got %s %q, want the lane with %q", path, body, want)
		}
	}
	send(t, c, "GET /3 HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n")
	if path, body := answer(t, br, "GET"); path != "net/http" || body != "GET /3 " {
		t.Fatalf("got %s %q, want net/http with GET /3", path, body)
	}
	send(t, c, "GET /4 HTTP/1.1\r\nHost: x\r\n\r\n") // net/http keeps the connection from then on
	if path, _ := answer(t, br, "GET"); path != "net/http" {
		t.Fatalf("the request after the hand-off was served by %s", path)
	}
	if lane.Served() != 2 || lane.HandedOff() != 1 {
		t.Fatalf("served %d, handed off %d; want 2 and 1", lane.Served(), lane.HandedOff())
	}
}

func TestAClientThatLeavesCancelsTheRequestContext(t *testing.T) {
	started, ended := make(chan struct{}), make(chan error, 1)
	_, addr := startLane(t, testRouter{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			ended <- r.Context().Err()
		case <-time.After(ioTimeout):
			ended <- errors.New("the request's context was not cancelled")
		}
	})})
	c, _ := dial(t, addr)
	send(t, c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	c.Close()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler saw %v, want the context cancelled", err)
	}
}

func TestAHeadCutShortGetsNetHTTPsAnswer(t *testing.T) {
	_, addr := startLane(t, testRouter{h: echo})
	c, br := dial(t, addr)
	send(t, c, "GET / HTTP/1.1\r\nHo")
	c.(*net.TCPConn).CloseWrite()
	line, err := br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 400 Bad Request\r\n" {
		t.Fatalf("got %q (%v), want net/http's 400", line, err)
	}
}

func TestCloseEndsTheLanesIdleConnectionsAndClosesAfterBusyOnes(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	lane, addr := startLane(t, testRouter{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			started <- struct{}{}
			<-release
		}
		io.WriteString(w, "ok")
	})})
	idle, idleR := dial(t, addr)
	send(t, idle, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
	if path, _ := answer(t, idleR, "GET"); path != "lane" {
		t.Fatalf("served by %s", path)
	}
	busy, busyR := dial(t, addr)
	defer busy.Close()
	send(t, busy, "GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	lane.Close()
	if _, err := idleR.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after Close: %v, want EOF", err)
	}
	close(release)
	res, err := http.ReadResponse(busyR, nil)
	if err != nil || !res.Close { // ReadResponse takes the Connection: close field out into Close
		t.Fatalf("the busy connection's answer: %v %v, want one with Connection: close", res, err)
	}
	io.Copy(io.Discard, res.Body)
	if _, err := busyR.ReadByte(); err != io.EOF {
		t.Fatalf("busy connection after its answer: %v, want EOF", err)
	}
}

func TestAFlushedStreamReachesTheClientBeforeItsEnd(t *testing.T) {
	release := make(chan struct{})
	_, addr := startLane(t, testRouter{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: 1\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("Flush: %v", err)
		}
		<-release
		io.WriteString(w, "data: 2\n\n")
	})})
	c, br := dial(t, addr)
	defer close(release)
	send(t, c, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || line != "data: 1\n" || res.Header.Get("X-Path") != "lane" {
		t.Fatalf("first event %q (%v) from %s, want data: 1 from the lane before the handler ends", line, err, res.Header.Get("X-Path"))
	}
}
