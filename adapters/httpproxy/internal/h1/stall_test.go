package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestReadTimeoutStallLimit(t *testing.T) {
	const limit = 100 * time.Millisecond
	for _, tc := range []struct {
		name  string
		head  string
		stall bool // the app stops after part of the body
	}{
		{name: "a Content-Length body that stalls fails with a StallError", head: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc", stall: true},
		{name: "a chunked body that stalls fails with a StallError", head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", stall: true},
		{name: "a close-delimited body that stalls fails with a StallError", head: "HTTP/1.1 200 OK\r\n\r\nabc", stall: true},
		{name: "a body sent in pieces closer than the limit is read whole", head: "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan struct{})
			s := newRawServer(t, func(c net.Conn, br *bufio.Reader, n int64) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, tc.head)
				if !tc.stall {
					for range 3 {
						time.Sleep(limit / 2)
						io.WriteString(c, "abc")
					}
					return
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := br.ReadByte(); err != nil && !errors.Is(err, errDeadline{}) {
					close(closed)
				}
			})
			tr, _ := newTransport(t, s)
			tr.ReadTimeout = limit
			if !tc.stall {
				// Pieces 50ms apart under a limit 16 times that: a loaded machine (the whole suite under
				// -race) delays a piece by a few hundred ms at times, which is scheduling, not a stall.
				tr.ReadTimeout = 16 * limit / 2
			}
			start := time.Now()
			_, body, err := do(t, tr, "GET", s.url()+"/", "")
			took := time.Since(start)
			if !tc.stall {
				if err != nil || body != strings.Repeat("abc", 4) {
					t.Fatalf("body %q, %v", body, err)
				}
				return
			}
			var se *StallError
			var ne net.Error
			if !errors.As(err, &se) || se.Limit != limit || !errors.As(err, &ne) || !ne.Timeout() || body != "abc" {
				t.Fatalf("body %q, error %v: want a StallError after abc", body, err)
			}
			// Not before the limit; the upper bound only tells this limit from anything else (generous: no
			// speed target).
			if took < limit || took > limit+StallSlack(limit)+20*time.Second {
				t.Fatalf("stall cut after %v, want it from the %v limit", took, limit)
			}
			select {
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("the connection stayed open after the stall")
			}
			if tr.IdleConns() != 0 {
				t.Fatal("a stalled connection was pooled")
			}
		})
	}
}

// errDeadline matches a timeout error.
type errDeadline struct{}

func (errDeadline) Error() string { return "deadline" }
func (errDeadline) Is(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPooledConnectionOutlivesTheStallDeadline(t *testing.T) {
	const limit = 50 * time.Millisecond
	s := newRawServer(t, keepServing(func(*http.Request, int64) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	}))
	tr, _ := newTransport(t, s)
	tr.ReadTimeout = limit
	tr.ResponseHeaderTimeout = 0 // the head read relies on the deadline release cleared
	for i := range 2 {
		if i > 0 {
			time.Sleep(4 * limit) // idle past the body's stall deadline
		}
		// POST: the reused connection is peeked for liveness first, which obeys a read deadline.
		if _, body, err := do(t, tr, "POST", s.url()+"/", "x"); err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Fatalf("%d connections: an idle connection kept a stale deadline and was dropped", n)
	}
}
