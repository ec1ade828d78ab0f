package connlimit

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// server accepts on a wrapped loopback listener and hands every admitted connection to the test.
type server struct {
	l     *Listener
	conns chan net.Conn
}

func newServer(t *testing.T, opts Options) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{l: New(ln, opts), conns: make(chan net.Conn, 64)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := s.l.Accept()
			if err != nil {
				return
			}
			s.conns <- c
		}
	}()
	t.Cleanup(func() {
		s.l.Close()
		<-done
		close(s.conns)
		for c := range s.conns {
			c.Close()
		}
	})
	return s
}

// dial connects from the local address from (e.g. "127.0.0.2") and returns the client side.
func dial(t *testing.T, addr net.Addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// admitted waits for the server side of the next admitted connection.
func (s *server) admitted(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection admitted within 5s")
		return nil
	}
}

// refusal sends a request on c and returns everything the server sent before closing.
func refusal(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("reading the refusal: %v", err)
	}
	return string(b)
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "broken pipe"))
}

func TestLimits(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		first      []string // addresses whose connections must be admitted
		refused    string   // address whose next connection must be refused
		reason     string
		thenFrom   string // after one admitted connection closes, a connection from here is admitted
		otherAdmit string // an address still admitted while refused is refused ("" for none)
	}{
		{
			name:       "the connection past the per-client limit is refused while another client is admitted",
			opts:       Options{PerClient: 2, Reply: true},
			first:      []string{"127.0.0.1", "127.0.0.1"},
			refused:    "127.0.0.1",
			reason:     ReasonPerClient,
			thenFrom:   "127.0.0.1",
			otherAdmit: "127.0.0.2",
		},
		{
			name:     "the connection past the total limit is refused whoever it comes from",
			opts:     Options{Max: 2, Reply: true},
			first:    []string{"127.0.0.1", "127.0.0.2"},
			refused:  "127.0.0.3",
			reason:   ReasonTotal,
			thenFrom: "127.0.0.3",
		},
		{
			name:     "the total limit is checked before the per-client one",
			opts:     Options{Max: 2, PerClient: 2, Reply: true},
			first:    []string{"127.0.0.1", "127.0.0.1"},
			refused:  "127.0.0.1",
			reason:   ReasonTotal,
			thenFrom: "127.0.0.1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var reasons []string
			tt.opts.OnReject = func(r string) { mu.Lock(); reasons = append(reasons, r); mu.Unlock() }
			s := newServer(t, tt.opts)
			var held []net.Conn
			for _, from := range tt.first {
				dial(t, s.l.Addr(), from)
				held = append(held, s.admitted(t))
			}
			if tt.otherAdmit != "" {
				dial(t, s.l.Addr(), tt.otherAdmit)
				held = append(held, s.admitted(t))
			}
			got := refusal(t, dial(t, s.l.Addr(), tt.refused))
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
			if err != nil {
				t.Fatalf("refusal %q is not an HTTP answer: %v", got, err)
			}
			if resp.StatusCode != 503 || !resp.Close || resp.Header.Get("Retry-After") != "1" {
				t.Errorf("refusal = %d close=%v Retry-After=%q, want 503 close 1", resp.StatusCode, resp.Close, resp.Header.Get("Retry-After"))
			}
			mu.Lock()
			if len(reasons) != 1 || reasons[0] != tt.reason {
				t.Errorf("OnReject reasons = %v, want [%s]", reasons, tt.reason)
			}
			mu.Unlock()

			held[0].Close()
			held[0].Close() // a second Close must not free a second slot
			dial(t, s.l.Addr(), tt.thenFrom)
			held[0] = s.admitted(t)
			if got := refusal(t, dial(t, s.l.Addr(), tt.refused)); !strings.HasPrefix(got, "HTTP/1.1 503 ") {
				t.Errorf("after a slot was freed and taken again, the next connection got %q, want a 503", got)
			}
			want := len(held)
			if st := s.l.Stats(); st.Open != want {
				t.Errorf("Stats().Open = %d, want %d (a double Close freed two slots?)", st.Open, want)
			}
			for _, c := range held {
				c.Close()
			}
			if st := s.l.Stats(); st.Open != 0 || st.RejectedTotal+st.RejectedPerClient != 2 {
				t.Errorf("Stats() after closing all = %+v, want 0 open and 2 refused", st)
			}
		})
	}
}

func TestRefusedWithoutReplyIsClosedSilently(t *testing.T) {
	s := newServer(t, Options{Max: 1})
	dial(t, s.l.Addr(), "127.0.0.1")
	s.admitted(t)
	if got := refusal(t, dial(t, s.l.Addr(), "127.0.0.1")); got != "" {
		t.Errorf("refused connection without Reply got %q, want nothing", got)
	}
}

func TestRefusalsAreLoggedAtMostOncePerSecond(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	s := newServer(t, Options{PerClient: 1, Logger: logger})
	dial(t, s.l.Addr(), "127.0.0.1")
	s.admitted(t)
	for i := 0; i < 20; i++ {
		refusal(t, dial(t, s.l.Addr(), "127.0.0.1"))
	}
	if st := s.l.Stats(); st.RejectedPerClient != 20 {
		t.Errorf("RejectedPerClient = %d, want 20", st.RejectedPerClient)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "connection refused"); n < 1 || n > 2 { // 20 refusals may straddle a second
		t.Errorf("%d log lines for 20 refusals, want 1 (or 2 across a second boundary):\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "reason=per_client") || !strings.Contains(logs.String(), "client=127.0.0.1") {
		t.Errorf("log line lacks the reason or client:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestHTTPServerReleasesSlots runs net/http over the listener: keep-alive connections hold their slots,
// and a client closing its connection frees the slot once the server notices.
func TestHTTPServerReleasesSlots(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain HTTP"
		if useTLS {
			name = "TLS (refused connections are closed without an answer)"
		}
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := New(ln, Options{PerClient: 1, Reply: !useTLS})
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
			srv.Listener = l
			if useTLS {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			defer srv.Close()
			get := func(c *http.Client) (int, error) {
				resp, err := c.Get(srv.URL)
				if err != nil {
					return 0, err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			newClient := func() *http.Client {
				c := srv.Client()
				tr := c.Transport.(*http.Transport).Clone()
				tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
				return &http.Client{Transport: tr, Timeout: 5 * time.Second}
			}
			a, b := newClient(), newClient()
			if code, err := get(a); err != nil || code != 200 {
				t.Fatalf("first client: %d %v", code, err)
			}
			code, err := get(b)
			if useTLS && err == nil {
				t.Errorf("second TLS client got %d, want the connection closed", code)
			}
			if !useTLS && (err != nil || code != 503) {
				t.Errorf("second client got %d %v, want 503", code, err)
			}
			a.CloseIdleConnections()
			deadline := time.Now().Add(5 * time.Second)
			for l.Stats().Open != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("slot not released 5s after the client closed: %+v", l.Stats())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if code, err := get(b); err != nil || code != 200 {
				t.Errorf("after the first client left, the second got %d %v, want 200", code, err)
			}
			b.CloseIdleConnections()
		})
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	l := New(nil, Options{RetryAfter: 1500 * time.Millisecond})
	if !bytes.Contains(l.reply, []byte("Retry-After: 2\r\n")) {
		t.Errorf("reply %q, want Retry-After: 2", l.reply)
	}
}

// FuzzReadHead: the refusal path finds the end of any request head within its 8 KiB budget, and never
// reports a head for input that has none and stopped short of the budget.
func FuzzReadHead(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\nHost: x\n\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		client, srv := net.Pipe()
		defer srv.Close()
		go func() {
			client.Write(data)
			client.Close()
		}()
		srv.SetDeadline(time.Now().Add(5 * time.Second))
		got := readHead(srv)
		head := bytes.Contains(data, []byte("\r\n\r\n")) || bytes.Contains(data, []byte("\n\n"))
		if head && len(data) <= 8<<10 && !got {
			t.Errorf("readHead(%q) = false, want true", data)
		}
		if !head && len(data) < 8<<10 && got != (len(data) > 0) {
			// a client that sent something and closed is answered too (it may half-close after its request)
			t.Errorf("readHead(%q) = %v, want %v", data, got, len(data) > 0)
		}
		io.Copy(io.Discard, srv)
	})
}
