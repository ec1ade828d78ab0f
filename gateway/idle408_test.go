package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// TestAnAppThatTimesAnIdleConnectionOutIsNotUnsolicited: an app that answers 408 on a keep-alive
// connection it considers idle, and closes it (Node does once its headers timeout passes), closed the
// connection: the gateway drops it quietly, as net/http's Transport does, and the next request goes on
// a new one, with no "unsolicited" line or count. With the lane off, on its loops and on goroutines.
func TestAnAppThatTimesAnIdleConnectionOutIsNotUnsolicited(t *testing.T) {
	for _, s := range []struct{ lane, loops string }{{"false", "0"}, {"true", "0"}, {"true", "-1"}} {
		t.Run("lane="+s.lane+"/loops="+s.loops, func(t *testing.T) {
			var conns atomic.Int32
			idle, timedOut := make(chan struct{}), make(chan struct{}, 4)
			app := testpeer.ServeTCP(t, func(c net.Conn) {
				n := conns.Add(1)
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
					if n == 1 {
						// The first connection is timed out once idle (its answer was delivered): a 408,
						// then the close.
						<-idle
						io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
						timedOut <- struct{}{}
						return
					}
				}
			})
			var once sync.Once
			release := func() { once.Do(func() { close(idle) }) }
			t.Cleanup(release) // (before the app's own cleanup, which waits for its connections)
			logs := &syncBuffer{}
			addr, _ := startFront(t, map[string]string{"GATEWAY_PRIMARY": "http://" + app,
				"GATEWAY_FAST_LANE": s.lane, "GATEWAY_FAST_LANE_LOOPS": s.loops}, slog.New(slog.NewTextHandler(logs, nil)))
			get := func() string {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
				return resp.Status + " " + string(b)
			}
			if got := get(); got != "200 OK ok" {
				t.Fatalf("first request: %q", got)
			}
			release()
			select {
			case <-timedOut: // the 408 is in the gateway's socket once the app's write returned (loopback)
			case <-time.After(10 * time.Second):
				t.Fatal("the app never timed its connection out")
			}
			if got := get(); got != "200 OK ok" {
				t.Fatalf("after the app timed its connection out: %q", got)
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("the app saw %d connections, want 2 (the timed-out one, a new one)", n)
			}
			if strings.Contains(logs.String(), "unsolicited") {
				t.Errorf("a 408 on an idle connection was taken for an unsolicited answer:\n%s", logs.String())
			}
		})
	}
}
