package clientbody_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/clientbody"
)

// server starts an HTTP/1 server whose handler turns full duplex on, reads read bytes of the body (in
// another goroutine when wake is set, which the handler then wakes with an expired read deadline), answers
// with a chunked body and ends the body with clientbody.End. It returns the address and the server's log.
func server(t *testing.T, read int, wake bool) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if err := rc.EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		var n int
		var readErr error
		body := func() {
			buf := make([]byte, read+1)
			n, readErr = io.ReadAtLeast(r.Body, buf, read)
			if errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF) {
				readErr = nil
			}
		}
		var wg sync.WaitGroup
		if wake {
			wg.Go(body)
		} else if read > 0 {
			body()
		}
		w.Write([]byte("answer of "))
		rc.Flush()
		w.Write([]byte(r.Method))
		woke := false
		if wake {
			woke = rc.SetReadDeadline(time.Unix(1, 0)) == nil
			wg.Wait()
		}
		clientbody.End(w, r.Body, r.ContentLength-int64(n), woke, readErr)
	}))
	srv.Config.ErrorLog = log.New(logs, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), logs
}

// TestEndKeepsOrClosesTheConnection sends a POST on one keep-alive connection, reads its answer, then
// asks again on the same connection: a body whose rest net/http already holds keeps the connection (the
// next request is answered), anything else closes it after a complete answer; net/http never panics.
func TestEndKeepsOrClosesTheConnection(t *testing.T) {
	tests := []struct {
		name     string
		length   int    // the declared body length
		sent     string // what the client sends of the body with the head; the rest only after the answer
		read     int    // what the handler reads of the body
		wake     bool
		wantKept bool
	}{
		{name: "a small body sent whole and never read keeps the connection", length: 5, sent: "qty=3", wantKept: true},
		{name: "a small body sent whole and read in part keeps the connection", length: 5, sent: "qty=3", read: 2, wantKept: true},
		{name: "a body read to its end keeps the connection", length: 5, sent: "qty=3", read: 5, wantKept: true},
		{name: "a rest the client still holds back closes the connection", length: 5, sent: "qt", read: 2},
		{name: "a pending read woken by an expired deadline closes the connection", length: 5, sent: "qt", read: 5, wake: true},
		{name: "a rest of 256 KiB or more closes the connection without reading it", length: clientbody.MaxDrain + 10,
			sent: strings.Repeat("x", clientbody.MaxDrain+10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, logs := server(t, tt.read, tt.wake)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			head := "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(tt.length) + "\r\n\r\n"
			go c.Write([]byte(head + tt.sent)) // a large body may wait for the server to read it
			br := bufio.NewReader(c)
			answer(t, br, "POST")

			// The rest of the body and the next request, as a client that waited for the answer sends them.
			rest := strings.Repeat("y", tt.length-len(tt.sent))
			_, _ = c.Write([]byte(rest + "GET /next HTTP/1.1\r\nHost: x\r\n\r\n"))
			if tt.wantKept {
				answer(t, br, "GET")
			} else if b, err := br.ReadByte(); err == nil {
				t.Errorf("the connection stayed open after the answer: read %q", b)
			}
			if strings.Contains(logs.String(), "panic") {
				t.Errorf("the server panicked:\n%s", logs.String())
			}
		})
	}
}

// answer reads one answer from br and checks it is complete and answers method.
func answer(t *testing.T, br *bufio.Reader, method string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to the %s: %v", method, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "answer of "+method {
		t.Fatalf("the answer to the %s: %q, %v", method, b, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
