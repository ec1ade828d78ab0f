package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestAClientThatLeavesIsLoggedAsNetHTTPLogsIt: a client that closes its connection while the app holds
// its answer, before the answer's head or in the middle of its body, ends the exchange with the app (the
// app sees its connection closed), gets one access line (499 before the head; 200 in the middle of the
// body) and no warning: a client going away is not the app's failure. The same with the
// lane off (net/http's background read cancels the request's context) and on.
func TestAClientThatLeavesIsLoggedAsNetHTTPLogsIt(t *testing.T) {
	for _, tt := range []struct {
		name string
		// answer is what the app sends before it stalls; clientReads how many body bytes the client
		// reads before it leaves (-1: it does not wait for the head).
		answer      string
		clientReads int
		wantLine    *regexp.Regexp
		delegates   string // GATEWAY_DELEGATES: the app is the primary of a cascade
	}{
		{"before the head", "", -1, regexp.MustCompile(`msg=request .*status=499 `), ""},
		{"in the middle of the body", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 65536\r\n\r\n" + strings.Repeat("x", 32<<10), 16 << 10,
			regexp.MustCompile(`msg=request .*status=200 `), ""},
		// The app's 404 passes the request on, but its body is still coming when the client leaves: the
		// next app is never asked.
		{"while an answer that passes comes", "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("n", 50), -1,
			regexp.MustCompile(`msg=request .*status=499 `), "http://127.0.0.1:1"},
	} {
		for _, lane := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/lane=%v", tt.name, lane), func(t *testing.T) {
				app, asked, ended := startHoldingApp(t, tt.answer)
				env := map[string]string{"GATEWAY_PRIMARY": "http://" + app + "?timeout=60s&read_timeout=60s",
					"GATEWAY_FAST_LANE": strconv.FormatBool(lane)}
				if tt.delegates != "" {
					env["GATEWAY_DELEGATES"] = tt.delegates
				}
				logs := &syncBuffer{}
				logger := slog.New(slog.NewTextHandler(logs, nil))
				addr, _ := startFront(t, env, logger)

				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
				select {
				case <-asked:
				case <-time.After(10 * time.Second):
					t.Fatal("the app never got the request")
				}
				if tt.clientReads >= 0 {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil {
						t.Fatalf("reading the answer's head: %v", err)
					} else if _, err := io.ReadFull(resp.Body, make([]byte, tt.clientReads)); err != nil {
						t.Fatalf("reading the first %d bytes of the body: %v", tt.clientReads, err)
					}
				}
				c.Close()
				select {
				case <-ended:
				case <-time.After(10 * time.Second):
					t.Fatalf("the app's exchange went on 10 s after its client left; gateway log:\n%s", logs.String())
				}
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(logs.String(), "msg=request ") && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond) // bounded poll: the access line follows the app's end
				}
				out := logs.String()
				if !tt.wantLine.MatchString(out) || strings.Count(out, "msg=request ") != 1 {
					t.Errorf("want one access line matching %s; gateway log:\n%s", tt.wantLine, out)
				}
				if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
					t.Errorf("a client going away logged a warning; gateway log:\n%s", out)
				}
			})
		}
	}
}

// TestAClientThatHalfClosesGetsNoAnswer: a client that shuts its side of the connection (SHUT_WR) while
// the app has not answered is a client that went away (net/http's background read sees its EOF): the
// exchange with the app ends, the access line says 499, and the client, which can still read, gets no
// byte: not the empty 200 net/http would make of an answer nobody wrote. With the lane off, with its
// event loops, and with a goroutine per connection (which notices within h1.WatchEvery).
func TestAClientThatHalfClosesGetsNoAnswer(t *testing.T) {
	type setting struct{ lane, loops, delegates string }
	var settings []setting
	for _, s := range []setting{{"false", "0", ""}, {"true", "0", ""}, {"true", "-1", ""}} {
		// Also as the primary of a cascade, whose pass answers are held: it makes up no 200 either.
		settings = append(settings, s, setting{s.lane, s.loops, "http://127.0.0.1:1"})
	}
	for _, setting := range settings {
		t.Run("lane="+setting.lane+"/loops="+setting.loops+"/delegates="+setting.delegates, func(t *testing.T) {
			app, asked, ended := startHoldingApp(t, "")
			logs := &syncBuffer{}
			env := map[string]string{"GATEWAY_PRIMARY": "http://" + app + "?timeout=60s",
				"GATEWAY_FAST_LANE": setting.lane, "GATEWAY_FAST_LANE_LOOPS": setting.loops}
			if setting.delegates != "" {
				env["GATEWAY_DELEGATES"] = setting.delegates
			}
			addr, _ := startFront(t, env, slog.New(slog.NewTextHandler(logs, nil)))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
			select {
			case <-asked:
			case <-time.After(10 * time.Second):
				t.Fatal("the app never got the request")
			}
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if len(got) != 0 || err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("the client got %q (%v), want nothing and the connection's end", got, err)
			}
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the app's exchange went on after its client left")
			}
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), "msg=request ") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // bounded poll: the access line follows the app's end
			}
			if out := logs.String(); !regexp.MustCompile(`msg=request .*status=499 `).MatchString(out) {
				t.Errorf("want an access line with status 499; gateway log:\n%s", out)
			}
		})
	}
}

// startHoldingApp starts an app that reads one request's head, writes answer (which may be empty or a
// part of an answer), closes asked, and then sends nothing more: ended is closed once the gateway closes
// the connection.
func startHoldingApp(t *testing.T, answer string) (addr string, asked, ended <-chan struct{}) {
	t.Helper()
	app, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	a, e := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := app.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(c, answer)
		close(a)
		io.Copy(io.Discard, br) // returns when the gateway closes the connection
		close(e)
	}()
	return app.Addr().String(), a, e
}

// TestAClientThatLeavesWithinItsBodyIsLoggedAsNetHTTPLogsIt: a client that sends a request's head and part
// of its body, then closes the connection, went away: one access line says 499 for the time it held the
// request, no warning blames the app, and nothing of the request stays counted as running (a reload's or
// the shutdown's drain waits for what Live counts). With the lane off, on its event loops and on a
// goroutine per connection; to the primary, and to a route with a guard (a run app's).
func TestAClientThatLeavesWithinItsBodyIsLoggedAsNetHTTPLogsIt(t *testing.T) {
	const held = 150 * time.Millisecond
	type setting struct{ lane, loops, path string }
	var settings []setting
	for _, s := range []setting{{"false", "0", ""}, {"true", "0", ""}, {"true", "-1", ""}} {
		settings = append(settings, setting{s.lane, s.loops, "/echo"}, setting{s.lane, s.loops, "/run/echo"})
	}
	for _, s := range settings {
		t.Run("lane="+s.lane+"/loops="+s.loops+s.path, func(t *testing.T) {
			app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(w, r.Body) }))
			defer app.Close()
			cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": app.URL, "GATEWAY_ROUTES": "/run/=" + app.URL,
				"GATEWAY_FAST_LANE": s.lane, "GATEWAY_FAST_LANE_LOOPS": s.loops}, nil)
			if err != nil {
				t.Fatal(err)
			}
			logs := &syncBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, nil))
			pass := RouteGuard{Middleware: func(h http.Handler) http.Handler { return h }, Admit: func() (func(), bool) { return func() {}, true }}
			g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger, RouteGuards: map[string]RouteGuard{"/run/": pass}})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			live := NewLive(logger)
			live.Swap(g)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f := NewFront(cfg, live, ln, logger, FrontOptions{})
			done := make(chan struct{})
			go func() { defer close(done); f.Serve() }()
			defer func() { f.Server.Close(); <-done }()

			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "POST "+s.path+" HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
			time.Sleep(held) // not synchronisation: how long the client holds its request before it leaves
			c.Close()
			deadline := time.Now().Add(10 * time.Second)
			for !strings.Contains(logs.String(), "msg=request ") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // bounded poll: the access line follows the client's close
			}
			out := logs.String()
			line := regexp.MustCompile(`msg=request .*status=499 .* duration_ms=([0-9.]+)`).FindStringSubmatch(out)
			if line == nil || strings.Count(out, "msg=request ") != 1 {
				t.Fatalf("want one access line with status 499; gateway log:\n%s", out)
			}
			if ms, _ := strconv.ParseFloat(line[1], 64); ms < float64(held/time.Millisecond) {
				t.Errorf("the access line says %s ms; the client held the request %v; log:\n%s", line[1], held, out)
			}
			if strings.Contains(out, "level=WARN") || strings.Contains(out, "level=ERROR") {
				t.Errorf("a client going away logged a warning; gateway log:\n%s", out)
			}
			for live.Running() != 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond) // bounded poll: the request's end is counted after its access line
			}
			if n := live.Running(); n != 0 {
				t.Errorf("%d requests still counted as running after the client left", n)
			}
		})
	}
}
