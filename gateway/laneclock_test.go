package gateway

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTheLanesRecordsCountFromTheRequestsStart: with the lane on as off, the access line's duration and
// app time count from when the request's head was read, also when the express path leaves the rest of the
// exchange to the handler chain (a chunked answer that came late), or read a body that came in pieces; and
// a client that leaves before a route's timeout is a departure (499), not the app's timeout (504), however
// close the two are.
func TestTheLanesRecordsCountFromTheRequestsStart(t *testing.T) {
	const pause = 300 * time.Millisecond
	for _, lane := range []bool{false, true} {
		t.Run(fmt.Sprintf("lane=%v", lane), func(t *testing.T) {
			app, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			go func() {
				for {
					c, err := app.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						br := bufio.NewReader(c)
						for {
							req, err := http.ReadRequest(br)
							if err != nil {
								return
							}
							io.Copy(io.Discard, req.Body)
							switch req.URL.Path {
							case "/late-chunked":
								time.Sleep(pause) // the app is slow: what the test measures
								io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
							case "/never":
								io.Copy(io.Discard, br)
								return
							default:
								io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
							}
						}
					}()
				}
			}()
			env := map[string]string{"GATEWAY_PRIMARY": "http://" + app.Addr().String() + "?timeout=1s",
				"GATEWAY_FAST_LANE": strconv.FormatBool(lane)}
			logs := &syncBuffer{}
			logger := slog.New(slog.NewTextHandler(logs, nil))
			addr, _ := startFront(t, env, logger)
			dial := func() net.Conn {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				return c
			}
			answer := func(c net.Conn) {
				res, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			// A chunked answer that comes late (the express path hands it to the chain).
			c := dial()
			io.WriteString(c, "GET /late-chunked HTTP/1.1\r\nHost: a\r\nX-Request-Id: late\r\n\r\n")
			answer(c)
			c.Close()
			// A body that comes in two pieces, pause apart.
			c = dial()
			io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nX-Request-Id: pieces\r\n\r\nab")
			time.Sleep(pause) // the client is slow: what the test measures
			io.WriteString(c, "cd")
			answer(c)
			c.Close()
			// A client that leaves before the route's 1 s timeout.
			c = dial()
			io.WriteString(c, "GET /never HTTP/1.1\r\nHost: a\r\nX-Request-Id: leaver\r\n\r\n")
			time.Sleep(pause) // the client gives up after a while: what the test is about
			c.Close()

			deadline := time.Now().Add(10 * time.Second)
			for strings.Count(logs.String(), "msg=request ") < 3 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // bounded poll: the last line follows the departure's detection
			}
			out := logs.String()
			for _, want := range []struct {
				id     string
				status int
				// duration_ms and app_duration_ms at least: half the pause, which tells a clock started at the
				// head (about the pause, a little less when the server read the head late) from one started
				// when the chain took over (well under a millisecond)
				least time.Duration
				app   bool
			}{{"late", 200, pause / 2, true}, {"pieces", 200, pause / 2, false}, {"leaver", 499, pause / 2, true}} {
				m := regexp.MustCompile(`status=(\d+) .*duration_ms=([\d.]+) .*request_id=` + want.id + ` .*app_duration_ms=([\d.]+)`).FindStringSubmatch(out)
				if m == nil {
					t.Errorf("%s: no access line:\n%s", want.id, out)
					continue
				}
				if m[1] != strconv.Itoa(want.status) {
					t.Errorf("%s: status %s, want %d:\n%s", want.id, m[1], want.status, out)
				}
				d, _ := strconv.ParseFloat(m[2], 64)
				a, _ := strconv.ParseFloat(m[3], 64)
				if d < float64(want.least.Milliseconds()) || want.app && a < float64(want.least.Milliseconds()) {
					t.Errorf("%s: duration_ms %s, app_duration_ms %s, want at least %v:\n%s", want.id, m[2], m[3], want.least, out)
				}
			}
			if strings.Contains(out, "status=504") {
				t.Errorf("a client's departure was logged as the app's timeout:\n%s", out)
			}
		})
	}
}
