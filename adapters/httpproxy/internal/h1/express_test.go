package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
)

// expressGET sends a GET on the express round trip and reads the simple answer's body.
func expressGET(t *testing.T, tr *Transport, replay bool) (int, string, error) {
	t.Helper()
	a, p, err := tr.Express([]byte("GET /x HTTP/1.1\r\nHost: app\r\n\r\n"), false, replay, nil)
	if err != nil {
		return 0, "", err
	}
	if p != nil {
		p.Abandon()
		t.Fatal("a simple answer went to the general path")
	}
	defer a.Close()
	body, err := io.ReadAll(a)
	return a.Status(), string(body), err
}

// TestExpressRetriesAReplayableRequestOnAStaleConnection: the express round trip sends a replayable
// request again on a new connection when its pooled one turns out closed before any answer byte (as
// RoundTripOutgoing does), and a request that may not be replayed gets the error instead.
func TestExpressRetriesAReplayableRequestOnAStaleConnection(t *testing.T) {
	for _, replay := range []bool{true, false} {
		closed := make(chan struct{}, 8)
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")
			// The app closes its side once it answered, but the close reaches the pool only after the next
			// request took the connection: the peek cannot see it, the write succeeds, the read finds EOF.
			<-closed
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, br)
		})
		tr, _ := newTransport(t, s)
		if code, body, err := expressGET(t, tr, replay); err != nil || code != 200 || body != "ok" {
			t.Fatalf("first request: %d %q %v", code, body, err)
		}
		testHookBeforeWrite = func() { closed <- struct{}{} }
		code, body, err := expressGET(t, tr, replay)
		testHookBeforeWrite = nil
		closed <- struct{}{} // the second connection's handler
		switch {
		case replay && (err != nil || code != 200 || body != "ok"):
			t.Errorf("replayable: %d %q %v, want it sent again on a new connection", code, body, err)
		case !replay && err == nil:
			t.Errorf("not replayable: %d %q, want the stale connection's error", code, body)
		case !replay && !errors.Is(err, io.EOF):
			t.Errorf("not replayable: %v, want the stale connection's EOF", err)
		}
	}
}

// TestExpressReportsAResetWhileTheClientIsWatched: an app that resets the connection instead of answering
// gives the express round trip the reset, as the head's read reports it, also when the client's departure
// is watched (the watch's peek is the read that meets the reset; the next read would find EOF).
func TestExpressReportsAResetWhileTheClientIsWatched(t *testing.T) {
	for _, watched := range []bool{false, true} {
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // a reset
		})
		tr, _ := newTransport(t, s)
		var gone func() bool
		if watched {
			gone = func() bool { return false }
		}
		a, p, err := tr.Express([]byte("GET /x HTTP/1.1\r\nHost: app\r\n\r\n"), false, false, gone)
		if a != nil {
			a.Close()
		}
		if p != nil {
			p.Abandon()
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("watched %v: %v, want the connection's reset", watched, err)
		}
	}
}
