package middleware

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestClientDeadlinesDoNotOutliveTheirRequest: net/http sets no write deadline of its own when
// WriteTimeout is 0, so a deadline one request set would still be in force on the keep-alive connection's
// next request; an answer the handler never writes a body for (204, 304, a redirect) is written by
// net/http after the handler returns, and would fail against a deadline that passed while the connection
// was idle. Likewise a handler that is slow to answer must get a fresh deadline for the answer itself.
func TestClientDeadlinesDoNotOutliveTheirRequest(t *testing.T) {
	// Generous, so that answering /body on a loaded machine never takes the deadline; the pauses and
	// thinking below are multiples of it.
	const idle = 500 * time.Millisecond
	h := ClientDeadlines(idle)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/body":
			io.WriteString(w, "hello")
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/write-then-think":
			io.WriteString(w, "partial") // buffered by net/http, written when the handler returns
			time.Sleep(2 * idle)
		case "/slow-empty":
			time.Sleep(2 * idle) // the handler thinking, not a client stalling
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		name  string
		paths []string
		pause time.Duration // between requests on one keep-alive connection
	}{
		{name: "an empty answer after the connection idled past the deadline is delivered", paths: []string{"/body", "/empty"}, pause: 3 * idle},
		{name: "a buffered answer whose handler returned after the deadline is delivered", paths: []string{"/write-then-think", "/body"}, pause: 0},
		{name: "an empty answer from a handler slower than the deadline is delivered", paths: []string{"/body", "/slow-empty"}, pause: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(c)
			for i, p := range tt.paths {
				if i > 0 {
					time.Sleep(tt.pause) // the passing of time is what is tested
				}
				io.WriteString(c, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d (%s): %v", i+1, p, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
