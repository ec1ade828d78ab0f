package middleware

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/failure"
)

func TestClientDeadlinesCutAStalledBodyButNotASlowOne(t *testing.T) {
	var lastErr error
	done := make(chan struct{}, 4)
	h := ClientDeadlines(time.Second)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		lastErr = err
		if err != nil {
			http.Error(w, "stalled", failure.Status(r, err))
		} else {
			fmt.Fprintf(w, "got %d", len(b))
		}
		done <- struct{}{}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	send := func(chunks int, pause time.Duration) string {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", 10)
		for i := 0; i < chunks; i++ {
			c.Write([]byte("ab"))
			time.Sleep(pause) // the client's pace is what is under test, not a synchronisation
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	// Five steady chunks, each well inside the idle limit, though the whole takes longer than it (the
	// limit is a second so that a loaded machine's scheduling delay of a chunk is not a stall).
	if got := send(5, 300*time.Millisecond); got != "200 got 10" {
		t.Fatalf("steady upload: %q (%v)", got, lastErr)
	}
	<-done
	// Two chunks, then silence: the read times out and the client gets 408.
	if got := send(2, 0); got != "408 stalled" {
		t.Fatalf("stalled upload: %q (%v)", got, lastErr)
	}
	<-done
}

func TestClientDeadlinesLeaveHijackedConnectionsAlone(t *testing.T) {
	release := make(chan struct{})
	h := ClientDeadlines(100 * time.Millisecond)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)) // as a write of the response would have
		rc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))  // as a read of the body would have
		c, brw, err := rc.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		<-release // longer than the idle limit, with the deadlines of the request still on the conn
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		if err := brw.Flush(); err != nil {
			t.Errorf("write after hijack: %v", err)
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	go func() { time.Sleep(300 * time.Millisecond); close(release) }()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("hijacked answer %q", b)
	}
}
