package h1

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
)

func answerFor(letter string, r *http.Request) string {
	body := letter + " " + r.URL.Path
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// TestUnsolicitedAnswersAreNeverDelivered: response-queue poisoning (SECURITY.md). An app that writes an
// answer no request asked for must never have it read as a later request's answer, whichever request
// method, and the connection that held it is dropped and counted.
func TestUnsolicitedAnswersAreNeverDelivered(t *testing.T) {
	for _, method := range []string{"GET", "PUT", "POST"} {
		t.Run("a stale answer that arrived while the connection was idle, "+method, func(t *testing.T) {
			poke, wrote := make(chan struct{}), make(chan struct{})
			s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, r.Body)
					io.WriteString(c, answerFor("A", r))
					if _, ok := <-poke; !ok {
						return
					}
					io.WriteString(c, answerFor("B", r))
					wrote <- struct{}{}
				}
			})
			defer close(poke)
			tr, _ := newTransport(t, s)
			var reported atomic.Int64
			tr.OnUnsolicited = func() { reported.Add(1) }
			for i := 1; i <= 4; i++ {
				_, body, err := do(t, tr, method, fmt.Sprintf("%s/%d", s.url(), i), "x")
				if want := fmt.Sprintf("A /%d", i); err != nil || body != want {
					t.Fatalf("request %d: %q %v, want %q", i, body, err, want)
				}
				poke <- struct{}{}
				<-wrote
			}
			// The last connection still holds its stale answer in the pool; the three before were
			// caught when the next request looked at them.
			if tr.Unsolicited() != 3 || reported.Load() != 3 {
				t.Fatalf("Unsolicited() = %d, OnUnsolicited called %d times, want 3", tr.Unsolicited(), reported.Load())
			}
			if s.conns.Load() != 4 {
				t.Fatalf("%d app connections for 4 requests, want a new one after each poisoned one", s.conns.Load())
			}
		})
	}
	t.Run("a stale answer right behind the real one is dropped with the connection", func(t *testing.T) {
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			for {
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.WriteString(c, answerFor("A", r)+answerFor("B", r)) // one write: one read takes both
			}
		})
		tr, _ := newTransport(t, s)
		for i := 1; i <= 3; i++ {
			_, body, err := do(t, tr, "GET", fmt.Sprintf("%s/%d", s.url(), i), "")
			if want := fmt.Sprintf("A /%d", i); err != nil || body != want {
				t.Fatalf("request %d: %q %v, want %q", i, body, err, want)
			}
		}
		if tr.Unsolicited() != 3 {
			t.Fatalf("Unsolicited() = %d, want 3", tr.Unsolicited())
		}
	})
	t.Run("a stale answer in the instant between the idle check and the write costs one answer, never a shift", func(t *testing.T) {
		// The residual window SECURITY.md states: bytes that arrive after the idle check and before the
		// request is written are indistinguishable from its answer. What must hold is that the real answer
		// they displaced is never handed to the next request.
		poke, wrote := make(chan struct{}), make(chan struct{}, 8)
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			var last atomic.Pointer[http.Request]
			done := make(chan struct{})
			defer close(done)
			go func() { // writes the stale B while the connection's reader waits for the next request
				for {
					select {
					case <-poke:
						io.WriteString(c, answerFor("B", last.Load()))
						wrote <- struct{}{}
					case <-done:
						return
					}
				}
			}()
			for {
				r, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				last.Store(r)
				io.WriteString(c, answerFor("A", r))
				wrote <- struct{}{}
			}
		})
		tr, _ := newTransport(t, s)
		var inWindow atomic.Bool
		testHookBeforeWrite = func() {
			if inWindow.CompareAndSwap(true, false) {
				poke <- struct{}{} // the app writes its stale B for the previous request now
				<-wrote
			}
		}
		defer func() { testHookBeforeWrite = nil }()
		want := []string{"A /1", "B /1", "A /3"}
		for i := 1; i <= 3; i++ {
			if i == 2 {
				inWindow.Store(true)
			}
			_, body, err := do(t, tr, "GET", fmt.Sprintf("%s/%d", s.url(), i), "")
			if err != nil || body != want[i-1] {
				t.Fatalf("request %d: %q %v, want %q", i, body, err, want[i-1])
			}
			<-wrote // the app's real answer to this request is on the wire before the next one
		}
		if tr.Unsolicited() != 1 {
			t.Fatalf("Unsolicited() = %d, want 1 (the displaced answer)", tr.Unsolicited())
		}
	})
}
