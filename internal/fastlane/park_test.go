//go:build linux

package fastlane

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/idlepark"
)

// parkAfter is the parking rigs' park delay.
const parkAfter = 20 * time.Millisecond

// parkRig is a lane over the gateway's stack under it: connection limits, then idle parking.
type parkRig struct {
	srv    *http.Server
	lane   *Listener
	parker *idlepark.Listener
	lim    *connlimit.Listener
	addr   string
}

// startParkingLane serves tr through the lane over an idle parker (delay after) over connection limits,
// as gateway.NewFront stacks them; srv's IdleTimeout is idle and its ReadHeaderTimeout header. The lane
// has no event loops: with loops, an idle connection goes back to a loop instead of the parker
// (gateway.TestAConnectionThatLeftALoopComesBackWhenIdle).
func startParkingLane(t *testing.T, tr testRouter, after, idle, header time.Duration) *parkRig {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := connlimit.New(raw, connlimit.Options{})
	parker, err := idlepark.New(lim, idlepark.Options{After: after})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: tr, ReadHeaderTimeout: header, IdleTimeout: idle}
	parker.Install(srv)
	lane := New(parker, Options{Server: srv, Parker: parker, Loops: -1})
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lane) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return &parkRig{srv: srv, lane: lane, parker: parker, lim: lim, addr: raw.Addr().String()}
}

// serving is the number of connections the lane has a goroutine for.
func (l *Listener) serving() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// waitFor polls cond (counters the code under test keeps) until it holds, for at most 10 s.
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

// expectClosed reads until the server closes the connection (whatever it answers first).
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection was not closed")
	}
}

var takeAllButNo = testRouter{h: echo, take: func(r *http.Request) bool { return r.URL.Path != "/no" }}

func TestAnIdleLaneConnectionIsParkedAndServedByTheLaneWhenItComesBack(t *testing.T) {
	r := startParkingLane(t, takeAllButNo, parkAfter, time.Minute, ioTimeout)
	c, br := dial(t, r.addr)
	for i := range 3 {
		send(t, c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		if path, body := answer(t, br, "GET"); path != "lane" || body != "GET /x " {
			t.Fatalf("request %d: got %s %q, want the lane with GET /x", i, path, body)
		}
		waitFor(t, "the connection parked, its lane goroutine gone", func() bool {
			return r.parker.ParkedTotal() == uint64(i+1) && r.parker.Parked() == 1 && r.lane.serving() == 0
		})
	}
	if r.lane.Served() != 3 || r.lane.HandedOff() != 0 {
		t.Fatalf("served %d, handed off %d; want 3 and 0", r.lane.Served(), r.lane.HandedOff())
	}
	if open := r.lim.Stats().Open; open != 1 {
		t.Fatalf("the limits count %d connections open, want 1 (a delivered connection is not admitted again)", open)
	}
}

func TestAConnectionHandedToNetHTTPIsParkedAndComesBackToTheLane(t *testing.T) {
	r := startParkingLane(t, takeAllButNo, parkAfter, time.Minute, ioTimeout)
	c, br := dial(t, r.addr)
	send(t, c, "GET /no HTTP/1.1\r\nHost: x\r\n\r\n")
	if path, _ := answer(t, br, "GET"); path != "net/http" {
		t.Fatalf("served by %s, want net/http", path)
	}
	waitFor(t, "net/http's connection parked", func() bool { return r.parker.Parked() == 1 })
	send(t, c, "GET /yes HTTP/1.1\r\nHost: x\r\n\r\n")
	if path, body := answer(t, br, "GET"); path != "lane" || body != "GET /yes " {
		t.Fatalf("after the park: got %s %q, want the lane with GET /yes", path, body)
	}
	if r.lane.HandedOff() != 1 || r.lim.Stats().Open != 1 {
		t.Fatalf("handed off %d, %d open; want 1 and 1", r.lane.HandedOff(), r.lim.Stats().Open)
	}
}

func TestAParkedLaneConnectionGetsANewHeaderTimeout(t *testing.T) {
	const header = 300 * time.Millisecond
	r := startParkingLane(t, takeAllButNo, parkAfter, time.Minute, header)
	c, br := dial(t, r.addr)
	send(t, c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	answer(t, br, "GET")
	waitFor(t, "parked", func() bool { return r.parker.Parked() == 1 })
	start := time.Now()
	send(t, c, "GET /x HTTP/1.1\r\n") // a head that never ends: cut at ReadHeaderTimeout, not the minute's idle timeout
	expectClosed(t, c)
	if took := time.Since(start); took < header {
		t.Fatalf("closed %v after the head began, before ReadHeaderTimeout (%v)", took, header)
	}
}

func TestIdleTimeoutClosesAParkedLaneConnection(t *testing.T) {
	t.Run("at the idle deadline", func(t *testing.T) {
		const idle = 500 * time.Millisecond
		r := startParkingLane(t, takeAllButNo, parkAfter, idle, ioTimeout)
		c, br := dial(t, r.addr)
		send(t, c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		answer(t, br, "GET")
		answered := time.Now()
		waitFor(t, "parked", func() bool { return r.parker.Parked() == 1 })
		expectClosed(t, c)
		// The server's idle wait began before the client had the answer: allow the write's path.
		if took := time.Since(answered); took < idle-50*time.Millisecond {
			t.Fatalf("closed %v after the answer, before IdleTimeout (%v)", took, idle)
		}
		waitFor(t, "released", func() bool { return r.parker.Parked() == 0 && r.lim.Stats().Open == 0 })
	})
	t.Run("an idle timeout shorter than the park delay never parks", func(t *testing.T) {
		r := startParkingLane(t, takeAllButNo, parkAfter, parkAfter/2, ioTimeout)
		c, br := dial(t, r.addr)
		send(t, c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		answer(t, br, "GET")
		expectClosed(t, c)
		if n := r.parker.ParkedTotal(); n != 0 {
			t.Fatalf("parked %d times", n)
		}
	})
}

func TestClosingTheServerClosesParkedLaneConnections(t *testing.T) {
	for _, tt := range []struct {
		name string
		stop func(*http.Server) error
	}{
		{"Close", (*http.Server).Close},
		{"Shutdown", func(s *http.Server) error {
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			return s.Shutdown(ctx)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := startParkingLane(t, takeAllButNo, parkAfter, time.Minute, ioTimeout)
			var cs []net.Conn
			for range 3 {
				c, br := dial(t, r.addr)
				send(t, c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
				if path, _ := answer(t, br, "GET"); path != "lane" {
					t.Fatalf("served by %s", path)
				}
				cs = append(cs, c)
			}
			waitFor(t, "three parked", func() bool { return r.parker.Parked() == 3 && r.lane.serving() == 0 })
			if err := tt.stop(r.srv); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			for _, c := range cs {
				expectClosed(t, c)
			}
			waitFor(t, "released", func() bool { return r.lim.Stats().Open == 0 })
		})
	}
}

func TestPipelinedBytesOfALaneConnectionAreNeverParked(t *testing.T) {
	tests := []struct {
		name        string
		after       time.Duration
		first, late string // first is sent, its answer read, then late (when not empty) at once
		rest        string // sent after several park delays
		path1, want string // who answers first and the second request's answer
	}{
		{"a second request cut after two bytes, in the lane", parkAfter,
			"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGE", "", "T /b HTTP/1.1\r\nHost: x\r\n\r\n", "lane", "lane GET /b "},
		{"a second request cut mid-head, in the lane", parkAfter,
			"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo", "", "st: x\r\n\r\n", "lane", "lane GET /b "},
		// The two bytes come after the answer, within the park delay (long here, so that a slow machine
		// does not park the connection before they come): the rest is awaited under the idle deadline.
		{"the first two bytes of the next request, in the lane", 300 * time.Millisecond,
			"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "GE", "T /b HTTP/1.1\r\nHost: x\r\n\r\n", "lane", "lane GET /b "},
		{"a second request cut after two bytes, handed to net/http with the first", parkAfter,
			"GET /no HTTP/1.1\r\nHost: x\r\n\r\nGE", "", "T /b HTTP/1.1\r\nHost: x\r\n\r\n", "net/http", "net/http GET /b "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startParkingLane(t, takeAllButNo, tt.after, time.Minute, ioTimeout)
			c, br := dial(t, r.addr)
			send(t, c, tt.first)
			if path, _ := answer(t, br, "GET"); path != tt.path1 {
				t.Fatalf("first request served by %s, want %s", path, tt.path1)
			}
			if tt.late != "" {
				send(t, c, tt.late)
			}
			// Proving an absence takes waiting: several park delays with the bytes held.
			time.Sleep(4 * tt.after)
			if n := r.parker.ParkedTotal(); n != 0 {
				t.Fatalf("parked %d times with bytes held", n)
			}
			send(t, c, tt.rest)
			if path, body := answer(t, br, "GET"); path+" "+body != tt.want {
				t.Fatalf("second request: got %q, want %q", path+" "+body, tt.want)
			}
		})
	}
}
