//go:build linux

package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestTheLoopsHoldIdleConnectionsWithoutGoroutines: with the fast lane's event loops, keep-alive
// connections that were served on the express path wait for their next request with no goroutine each
// (idle parking off, so nothing else takes them), and each serves its next request on the loop; without
// loops (GATEWAY_FAST_LANE_LOOPS=-1) each holds a goroutine, the difference the loops exist for.
func TestTheLoopsHoldIdleConnectionsWithoutGoroutines(t *testing.T) {
	const conns = 100
	for _, tt := range []struct {
		loops         string
		maxGoroutines int // goroutines serving a lane connection, with every connection idle
		minGoroutines int
	}{
		{"1", 0, 0},
		{"-1", conns, conns},
	} {
		t.Run("GATEWAY_FAST_LANE_LOOPS="+tt.loops, func(t *testing.T) {
			b := startRawBackend(t, laneAnswers)
			addr, f := startFront(t, map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String(),
				"GATEWAY_FAST_LANE": "true", "GATEWAY_FAST_LANE_LOOPS": tt.loops, "GATEWAY_IDLE_PARK_AFTER": "0"},
				slog.New(slog.DiscardHandler))
			cs := make([]net.Conn, conns)
			brs := make([]*bufio.Reader, conns)
			for i := range cs {
				c := dialFront(t, addr)
				cs[i], brs[i] = c, bufio.NewReader(c)
				askHello(t, c, brs[i], getCL)
			}
			if n := laneGoroutines(); n > tt.maxGoroutines || n < tt.minGoroutines {
				t.Errorf("%d idle connections: %d goroutines serve lane connections, want %d to %d", conns, n, tt.minGoroutines, tt.maxGoroutines)
			}
			if on, want := f.Lane.OnLoops(), int64(conns-tt.minGoroutines); on != want {
				t.Errorf("the loops hold %d connections, want %d", on, want)
			}
			for i, c := range cs {
				askHello(t, c, brs[i], getCL) // each connection serves its next request
			}
			if got, want := f.Lane.Served(), uint64(2*conns); got != want {
				t.Errorf("the lane served %d requests, want %d", got, want)
			}
			if loops := tt.loops != "-1"; loops != (f.Lane.Looped() == 2*conns) {
				t.Errorf("the loops finished %d of the %d exchanges", f.Lane.Looped(), 2*conns)
			}
		})
	}
}

// laneGoroutines counts the goroutines serving a lane connection (the lane's serve loop on their stack).
func laneGoroutines() int {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	n := 0
	for _, block := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(block, "fastlane.(*conn).serve") {
			count, _, _ := strings.Cut(block, " @")
			count = count[strings.LastIndexByte(count, '\n')+1:] // (the first block starts with the profile's title)
			c, _ := strconv.Atoi(count)
			n += c
		}
	}
	return n
}

// TestTheLoopRelaysALargeAnswerToASlowClient: an answer larger than the socket buffers, to a client that
// reads it in small pieces, arrives whole and unchanged through the event loop (its writes to the client
// wait for room, its reads from the app wait with them), and the connection serves another request after
// it. (A client receive buffer shrunk with SO_RCVBUF is not used: on loopback it stalls TCP itself.)
func TestTheLoopRelaysALargeAnswerToASlowClient(t *testing.T) {
	const size = 32 << 20
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(i*7 + i>>11)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.Write(payload)
	}))
	defer app.Close()
	addr, f := startFront(t, map[string]string{"GATEWAY_PRIMARY": app.URL, "GATEWAY_FAST_LANE": "true",
		"GATEWAY_FAST_LANE_LOOPS": "1"}, slog.New(slog.DiscardHandler))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 1<<10)
	for round := range 2 {
		if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		buf := make([]byte, 1<<10)
		n, err := io.CopyBuffer(h, io.LimitReader(res.Body, size+1), buf)
		if err != nil || n != size {
			t.Fatalf("round %d: %d bytes (%v), want %d", round, n, err, size)
		}
		if got, want := h.Sum(nil), sha256.Sum256(payload); string(got) != string(want[:]) {
			t.Fatalf("round %d: the body differs from the app's", round)
		}
		res.Body.Close()
	}
	if f.Lane.Looped() != 2 {
		t.Errorf("the loop finished %d exchanges, want 2", f.Lane.Looped())
	}
	if f.Lane.Waited() == 0 {
		t.Errorf("no write to the client waited for room: the answer did not exercise the backpressure")
	}
}

// TestTheLoopsTimeLimitsAreNetHTTPs: the idle limit between requests, the limit on a request head and the
// stall limit on a request body end a connection on the event loops as they end it with the lane off
// (net/http) and with a goroutine per connection: the client gets the same bytes before the connection's
// end.
func TestTheLoopsTimeLimitsAreNetHTTPs(t *testing.T) {
	b := startRawBackend(t, laneAnswers)
	cases := []struct{ name, send string }{
		{"idle after an answer", "GET /cl HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"a head that stops", "GET /cl HTTP/1.1\r\nHost: a\r\nAcc"},
		{"a head that never starts", ""},
		{"a body that stops", "POST /cl HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello"},
	}
	got := map[string]map[string]string{}
	for _, setting := range []struct{ lane, loops string }{{"false", "0"}, {"true", "0"}, {"true", "-1"}} {
		key := "lane=" + setting.lane + "/loops=" + setting.loops
		got[key] = map[string]string{}
		addr, _ := startFront(t, map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String(),
			"GATEWAY_FAST_LANE": setting.lane, "GATEWAY_FAST_LANE_LOOPS": setting.loops,
			"GATEWAY_IDLE_TIMEOUT": "300ms", "GATEWAY_READ_HEADER_TIMEOUT": "300ms", "GATEWAY_BODY_TIMEOUT": "300ms",
			"GATEWAY_IDLE_PARK_AFTER": "0"}, slog.New(slog.DiscardHandler))
		for _, c := range cases {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, c.send)
			all, err := io.ReadAll(conn) // until the gateway ends the connection
			conn.Close()
			if err != nil {
				t.Fatalf("%s, %s: %v after %q (the connection did not end)", key, c.name, err, all)
			}
			got[key][c.name] = dateRE.ReplaceAllString(regexp.MustCompile(`X-Request-Id: \w+`).ReplaceAllString(string(all), "X-Request-Id: (id)"), "Date: (date)")
		}
	}
	for _, c := range cases {
		off := got["lane=false/loops=0"][c.name]
		t.Logf("%s: %q", c.name, off)
		for _, key := range []string{"lane=true/loops=0", "lane=true/loops=-1"} {
			if on := got[key][c.name]; on != off {
				t.Errorf("%s, %s: the client got\n%q\nwith the lane off:\n%q", key, c.name, on, off)
			}
		}
	}
}

// TestAConnectionThatLeftALoopComesBackWhenIdle: a connection whose request the loop does not serve itself
// (here one with a forwarding field, which goes through the handler chain) moves to a goroutine of the
// lane; once idle for GATEWAY_IDLE_PARK_AFTER it goes back to an event loop (where the parker would
// otherwise take it), which serves its next express request itself.
func TestAConnectionThatLeftALoopComesBackWhenIdle(t *testing.T) {
	b := startRawBackend(t, laneAnswers)
	addr, f := startFront(t, map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String(),
		"GATEWAY_FAST_LANE": "true", "GATEWAY_FAST_LANE_LOOPS": "1", "GATEWAY_IDLE_PARK_AFTER": "50ms"},
		slog.New(slog.DiscardHandler))
	c := dialFront(t, addr)
	br := bufio.NewReader(c)
	askHello(t, c, br, "GET /cl HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\n\r\n")
	if f.Lane.Looped() != 0 || f.Lane.Served() != 1 {
		t.Fatalf("the loop finished %d exchanges of the lane's %d, want 0 of 1 (the chain serves this one)", f.Lane.Looped(), f.Lane.Served())
	}
	deadline := time.Now().Add(10 * time.Second)
	for f.Lane.Returned() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection did not go back to a loop")
		}
		time.Sleep(5 * time.Millisecond) // bounded poll: the park delay passes on the server's side
	}
	askHello(t, c, br, getCL)
	if f.Lane.Looped() != 1 {
		t.Fatalf("the loop finished %d exchanges, want the second request's", f.Lane.Looped())
	}
	if f.Parker.Parked() != 0 {
		t.Errorf("%d connections parked: the loop, not the parker, holds the idle connection", f.Parker.Parked())
	}
}

// TestTheLoopRetriesAReplayableRequestOnAStaleConnection: an app that closes a kept-alive connection when
// the next request arrives on it (what an app whose idle limit passed just then does) costs the client
// nothing for a GET: the request is sent again on a new connection, once, as the h1 client does; a POST is
// not sent again (502). The same with the lane off, on its loops and on goroutines.
func TestTheLoopRetriesAReplayableRequestOnAStaleConnection(t *testing.T) {
	for _, setting := range []struct{ lane, loops string }{{"false", "0"}, {"true", "0"}, {"true", "-1"}} {
		t.Run("lane="+setting.lane+"/loops="+setting.loops, func(t *testing.T) {
			app, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			var mu sync.Mutex
			var seen []string // the request lines the app read, with the connection's number
			go func() {
				for n := 0; ; n++ {
					c, err := app.Accept()
					if err != nil {
						return
					}
					go func(n int, c net.Conn) {
						defer c.Close()
						br := bufio.NewReader(c)
						for i := 0; ; i++ {
							req, err := http.ReadRequest(br)
							if err != nil {
								return
							}
							io.Copy(io.Discard, req.Body)
							mu.Lock()
							seen = append(seen, fmt.Sprintf("%d %s %s", n, req.Method, req.URL.Path))
							mu.Unlock()
							if i == 1 {
								return // the second request on a connection: closed unanswered
							}
							io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
						}
					}(n, c)
				}
			}()
			addr, f := startFront(t, map[string]string{"GATEWAY_PRIMARY": "http://" + app.Addr().String(),
				"GATEWAY_FAST_LANE": setting.lane, "GATEWAY_FAST_LANE_LOOPS": setting.loops}, slog.New(slog.DiscardHandler))
			c := dialFront(t, addr)
			br := bufio.NewReader(c)
			var statuses []int
			for _, req := range []string{"GET /1", "GET /2", "POST /3"} {
				fmt.Fprintf(c, "%s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", req)
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				statuses = append(statuses, res.StatusCode)
				if res.Close {
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			want := []string{"0 GET /1", "0 GET /2", "1 GET /2", "1 POST /3"}
			if fmt.Sprint(statuses) != "[200 200 502]" || fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Errorf("statuses %v, the app saw %q; want [200 200 502] and %q", statuses, seen, want)
			}
			if setting.loops == "0" && setting.lane == "true" && f.Lane.Looped() != 2 {
				t.Errorf("the loop finished %d exchanges, want the two GETs", f.Lane.Looped())
			}
		})
	}
}

// boomHandler is a log handler that panics on the access line of a request for /boom.
type boomHandler struct{ slog.Handler }

func (h boomHandler) Handle(ctx context.Context, r slog.Record) error {
	boom := false
	r.Attrs(func(a slog.Attr) bool {
		boom = boom || a.Key == "path" && a.Value.String() == "/boom"
		return true
	})
	if boom && r.Message == "request" {
		panic("the log handler failed")
	}
	return h.Handler.Handle(ctx, r)
}

func (h boomHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return boomHandler{h.Handler.WithAttrs(as)}
}
func (h boomHandler) WithGroup(g string) slog.Handler { return boomHandler{h.Handler.WithGroup(g)} }

// TestAPanicOnALoopEndsOneConnection: a panic while an event loop serves a connection (here the access
// log's handler panics on one request's line) is logged as net/http logs a handler's, closes that
// connection, and leaves the loop serving every other one.
func TestAPanicOnALoopEndsOneConnection(t *testing.T) {
	b := startRawBackend(t, laneAnswers)
	logs := &syncBuffer{}
	logger := slog.New(boomHandler{slog.NewTextHandler(logs, nil)})
	addr, f := startFront(t, map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String(),
		"GATEWAY_FAST_LANE": "true", "GATEWAY_FAST_LANE_LOOPS": "1"}, logger)
	other := dialFront(t, addr)
	otherBR := bufio.NewReader(other)
	askHello(t, other, otherBR, getCL)

	c := dialFront(t, addr)
	io.WriteString(c, "GET /boom HTTP/1.1\r\nHost: a\r\n\r\n")
	if got, err := io.ReadAll(c); err != nil && !errors.Is(err, syscall.ECONNRESET) || len(got) != 0 {
		t.Errorf("the client of the request whose line panicked got %q (%v), want its connection closed; log:\n%s", got, err, logs.String())
	}
	askHello(t, other, otherBR, getCL) // the loop goes on
	if f.Lane.OnLoops() != 1 {
		t.Errorf("the loop holds %d connections, want the other one", f.Lane.OnLoops())
	}
	if !strings.Contains(logs.String(), "panic serving a connection on the fast lane's event loop: the log handler failed") {
		t.Errorf("the panic is not logged:\n%s", logs.String())
	}
}

// getCL asks the raw backend (laneAnswers) for its 200 "hello".
const getCL = "GET /cl HTTP/1.1\r\nHost: a\r\n\r\n"

// askHello sends req on c and reads its answer, which must be laneAnswers' 200 "hello".
func askHello(t *testing.T, c net.Conn, br *bufio.Reader, req string) {
	t.Helper()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("%d %q (%v), want 200 hello", res.StatusCode, body, err)
	}
}
