package h1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/leakcheck"
	"github.com/switchyard/switchyard/internal/testpeer"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// rawServer is a loopback TCP app scripted per connection: serve gets each accepted connection with a
// buffered reader and the connection's sequence number (from 1). It counts connections.
type rawServer struct {
	addr  string
	conns atomic.Int64
}

func newRawServer(t *testing.T, serve func(c net.Conn, br *bufio.Reader, n int64)) *rawServer {
	t.Helper()
	s := &rawServer{}
	s.addr = testpeer.ServeTCP(t, func(c net.Conn) {
		serve(c, bufio.NewReader(c), s.conns.Add(1))
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.addr }

// keepServing answers every request on a connection with answer(req) written raw, until the client
// closes, answer returns "", or the answer asks to close (Connection: close, HTTP/1.0 without
// keep-alive, a body delimited by the close).
func keepServing(answer func(r *http.Request, n int64) string) func(net.Conn, *bufio.Reader, int64) {
	return func(c net.Conn, br *bufio.Reader, n int64) {
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			a := answer(r, n)
			io.Copy(io.Discard, r.Body)
			if a == "" {
				return
			}
			if _, err := io.WriteString(c, a); err != nil {
				return
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(a)), r)
			if err != nil || resp.Close || (resp.ContentLength < 0 && resp.TransferEncoding == nil && r.Method != "HEAD" && resp.StatusCode >= 200 && resp.StatusCode != 204 && resp.StatusCode != 304) {
				return
			}
		}
	}
}

// countingFallback records the requests the fast path gave up.
type countingFallback struct {
	n  atomic.Int64
	tr *http.Transport
}

func (f *countingFallback) RoundTrip(r *http.Request) (*http.Response, error) {
	f.n.Add(1)
	return f.tr.RoundTrip(r)
}

func newTransport(t *testing.T, s *rawServer) (*Transport, *countingFallback) {
	t.Helper()
	fb := &countingFallback{tr: &http.Transport{}}
	addr := s.addr
	tr := &Transport{
		Dial: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		Fallback:               fb,
		ResponseHeaderTimeout:  5 * time.Second,
		MaxResponseHeaderBytes: 4 << 10,
	}
	t.Cleanup(func() { tr.Close(); fb.tr.CloseIdleConnections() })
	return tr, fb
}

func do(t *testing.T, tr http.RoundTripper, method, url string, body string) (*http.Response, string, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

func TestBodyFramings(t *testing.T) {
	for _, tc := range []struct {
		name, method, answer, body string
		length                     int64
		reused                     bool
	}{
		{"a Content-Length body is read exactly and the connection reused", "GET",
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", 5, true},
		{"a chunked body is decoded and the connection reused", "GET",
			"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n", "abcde", -1, true},
		{"a body delimited by close is read to EOF and the connection not reused", "GET",
			"HTTP/1.1 200 OK\r\n\r\nuntil close", "until close", -1, false},
		{"Connection: close from the app is honoured", "GET",
			"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", "ok", 2, false},
		{"an HTTP/1.0 answer without keep-alive closes", "GET",
			"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", 2, false},
		{"an HTTP/1.0 answer with keep-alive is reused", "GET",
			"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", "ok", 2, true},
		{"a HEAD answer has no body but keeps its declared length", "HEAD",
			"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", "", 1234, true},
		{"a 204 has no body", "GET",
			"HTTP/1.1 204 No Content\r\n\r\n", "", 0, true},
		{"a 304 has no body even with a Content-Length", "GET",
			"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", "", 0, true},
		{"chunked wins over Content-Length and the connection is not reused", "GET",
			"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", "ab", -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, keepServing(func(*http.Request, int64) string { return tc.answer }))
			tr, fb := newTransport(t, s)
			for i := range 2 {
				resp, body, err := do(t, tr, tc.method, s.url()+"/x", "")
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if body != tc.body || resp.ContentLength != tc.length {
					t.Fatalf("request %d: body %q length %d, want %q %d", i, body, resp.ContentLength, tc.body, tc.length)
				}
			}
			want := int64(2)
			if tc.reused {
				want = 1
			}
			if got := s.conns.Load(); got != want || fb.n.Load() != 0 {
				t.Fatalf("%d connections (fallback used %d times), want %d", got, fb.n.Load(), want)
			}
		})
	}
}

func TestTrailersArriveAfterTheBody(t *testing.T) {
	s := newRawServer(t, keepServing(func(*http.Request, int64) string {
		return "HTTP/1.1 200 OK\r\nTrailer: X-Sum, X-Late\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"4\r\ndata\r\n0\r\nX-Sum: 42\r\nX-Extra: undeclared\r\n\r\n"
	}))
	tr, _ := newTransport(t, s)
	req, _ := http.NewRequest("GET", s.url(), nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, ok := resp.Trailer["X-Sum"]; !ok || resp.Header.Get("Trailer") != "" {
		t.Fatalf("declared trailers %v, header %v", resp.Trailer, resp.Header)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "data" {
		t.Fatalf("body %q, %v", b, err)
	}
	if resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Extra") != "undeclared" {
		t.Fatalf("trailers %v", resp.Trailer)
	}
	if tr.IdleConns() != 1 {
		t.Fatalf("%d idle connections after the trailers, want 1", tr.IdleConns())
	}
}

func TestMalformedAnswersAreProtocolErrors(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"a status line without a code", "HTTP/1.1 OK\r\n\r\n"},
		{"a status line of another protocol", "ICY 200 OK\r\n\r\n"},
		{"a two-digit status code", "HTTP/1.1 20 OK\r\n\r\n"},
		{"a header line without a colon", "HTTP/1.1 200 OK\r\nBroken\r\n\r\n"},
		{"a header name with a space", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n"},
		{"obsolete line folding", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\r\n"},
		{"conflicting Content-Length values", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"},
		{"a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"a Transfer-Encoding other than chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{"a control byte in a value", "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\n\r\n"},
		{"a 101 nobody asked for", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"},
		{"a head over the size limit", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("b", 5000) + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, keepServing(func(*http.Request, int64) string { return tc.answer }))
			tr, _ := newTransport(t, s)
			_, _, err := do(t, tr, "GET", s.url(), "")
			var pe *ProtocolError
			if !errors.As(err, &pe) && !errors.Is(err, errUnexpected101) {
				t.Fatalf("error %v (%T), want a protocol error", err, err)
			}
			if tr.IdleConns() != 0 {
				t.Fatal("a connection with a malformed answer went back to the pool")
			}
		})
	}
}

func TestTruncatedAnswers(t *testing.T) {
	for _, tc := range []struct{ name, answer string }{
		{"a head cut short", "HTTP/1.1 200 OK\r\nContent-Len"},
		{"a Content-Length body cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"},
		{"a chunked body cut short", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"},
		{"a chunked body without its last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
				if _, err := http.ReadRequest(br); err == nil {
					io.WriteString(c, tc.answer)
				}
			})
			tr, _ := newTransport(t, s)
			_, _, err := do(t, tr, "GET", s.url(), "")
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("error %v, want unexpected EOF", err)
			}
			if tr.IdleConns() != 0 {
				t.Fatal("a broken connection went back to the pool")
			}
		})
	}
}

func TestInformationalAnswersGoToTheTraceHook(t *testing.T) {
	s := newRawServer(t, keepServing(func(*http.Request, int64) string {
		return "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	}))
	tr, _ := newTransport(t, s)
	var got []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		got = append(got, fmt.Sprintf("%d %s", code, h.Get("Link")))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", s.url(), nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" || strings.Join(got, "|") != "100 |103 </a.css>; rel=preload" {
		t.Fatalf("status %d body %q, 1xx seen %q", resp.StatusCode, b, got)
	}
	// Without a hook they are skipped.
	if resp, body, err := do(t, tr, "GET", s.url(), ""); err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("without a hook: %v %v %q", resp, err, body)
	}
}

func TestTimeoutsAndCancellation(t *testing.T) {
	t.Run("an app silent past the header timeout is a timeout error and its connection is closed", func(t *testing.T) {
		closed := make(chan struct{})
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			http.ReadRequest(br)
			br.ReadByte() // returns when the transport closes the connection
			close(closed)
		})
		tr, _ := newTransport(t, s)
		tr.ResponseHeaderTimeout = 50 * time.Millisecond
		_, _, err := do(t, tr, "GET", s.url(), "")
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("error %v, want a timeout", err)
		}
		<-closed
	})
	t.Run("a context deadline gives the context's error", func(t *testing.T) {
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			http.ReadRequest(br)
			br.ReadByte()
		})
		tr, _ := newTransport(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url(), nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the context deadline", err)
		}
	})
	t.Run("cancelling while waiting for the head aborts the upstream connection", func(t *testing.T) {
		asked, closed := make(chan struct{}), make(chan struct{})
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			http.ReadRequest(br)
			close(asked)
			br.ReadByte()
			close(closed)
		})
		tr, _ := newTransport(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-asked; cancel() }()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url(), nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want canceled", err)
		}
		<-closed
	})
	t.Run("cancelling while reading the body aborts the read and the connection", func(t *testing.T) {
		closed := make(chan struct{})
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			http.ReadRequest(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart")
			br.ReadByte()
			close(closed)
		})
		tr, _ := newTransport(t, s)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url(), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		cancel()
		if _, err := resp.Body.Read(buf); !errors.Is(err, context.Canceled) {
			t.Fatalf("read after cancel: %v", err)
		}
		resp.Body.Close()
		<-closed
	})
	t.Run("the header timeout does not limit a slow body", func(t *testing.T) {
		next := make(chan struct{})
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			http.ReadRequest(br)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
			<-next
			io.WriteString(c, "cd")
		})
		tr, _ := newTransport(t, s)
		// The head is sent at once, yet a loaded machine can delay it by a few hundred ms: the header
		// timeout is generous, the body's pause longer still.
		const headerTimeout = time.Second
		tr.ResponseHeaderTimeout = headerTimeout
		req, _ := http.NewRequest("GET", s.url(), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(3*headerTimeout/2, func() { close(next) }) // longer than the header timeout
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "abcd" {
			t.Fatalf("body %q, %v", b, err)
		}
	})
}

func TestConnectionReuse(t *testing.T) {
	t.Run("a connection goes back only after its body was read to the end", func(t *testing.T) {
		s := newRawServer(t, keepServing(func(*http.Request, int64) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef"
		}))
		tr, _ := newTransport(t, s)
		req, _ := http.NewRequest("GET", s.url(), nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 3)
		io.ReadFull(resp.Body, buf)
		if tr.IdleConns() != 0 {
			t.Fatal("pooled before the body ended")
		}
		resp.Body.Close() // early close: the rest is unread, so the connection is closed
		if tr.IdleConns() != 0 {
			t.Fatal("pooled after an early close")
		}
		do(t, tr, "GET", s.url(), "")
		if tr.IdleConns() != 1 || s.conns.Load() != 2 {
			t.Fatalf("%d idle, %d connections; want 1 and 2", tr.IdleConns(), s.conns.Load())
		}
	})
	t.Run("idle connections are capped", func(t *testing.T) {
		release := make(chan struct{})
		var asked sync.WaitGroup
		asked.Add(3)
		s := newRawServer(t, keepServing(func(_ *http.Request, n int64) string {
			if n <= 3 {
				asked.Done()
				<-release
			}
			return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
		}))
		tr, _ := newTransport(t, s)
		tr.MaxIdleConns = 2
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { do(t, tr, "GET", s.url(), "") })
		}
		asked.Wait()
		close(release)
		wg.Wait()
		if tr.IdleConns() != 2 {
			t.Fatalf("%d idle, want 2", tr.IdleConns())
		}
	})
	t.Run("idle connections past the idle timeout are closed", func(t *testing.T) {
		closed := make(chan struct{})
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) {
			keepServing(func(*http.Request, int64) string { return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" })(c, br, 0)
			close(closed)
		})
		tr, _ := newTransport(t, s)
		tr.IdleConnTimeout = 30 * time.Millisecond
		do(t, tr, "GET", s.url(), "")
		<-closed // the sweep timer closed it
		if tr.IdleConns() != 0 {
			t.Fatalf("%d idle", tr.IdleConns())
		}
	})
	t.Run("Close closes idle connections and later ones are not pooled", func(t *testing.T) {
		s := newRawServer(t, keepServing(func(*http.Request, int64) string {
			return "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
		}))
		tr, _ := newTransport(t, s)
		req, _ := http.NewRequest("GET", s.url(), nil)
		inflight, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		do(t, tr, "GET", s.url(), "")
		tr.Close()
		io.ReadAll(inflight.Body)
		inflight.Body.Close()
		if tr.IdleConns() != 0 {
			t.Fatalf("%d idle after Close", tr.IdleConns())
		}
	})
}

func TestStaleConnections(t *testing.T) {
	// The app answers once per connection, then closes it: the pooled connection is stale when the next
	// request takes it. closed says the app has closed its side (the next request waits for it: a POST
	// is not sent again, so its pooled connection must already look closed when it is checked).
	answerOnce := func(closed chan<- struct{}) func(c net.Conn, br *bufio.Reader, _ int64) {
		return func(c net.Conn, br *bufio.Reader, _ int64) {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			c.(*net.TCPConn).CloseWrite()
			closed <- struct{}{}
			io.Copy(io.Discard, br) // until the client closes: its next request is never answered
		}
	}
	for _, tc := range []struct{ name, method, body string }{
		{"a GET on a connection the app closed is sent again on a new one", "GET", ""},
		{"a PUT with a body is sent again from the buffer", "PUT", "payload"},
		{"a POST checks its pooled connection first and dials instead", "POST", "order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			closed := make(chan struct{}, 8)
			s := newRawServer(t, answerOnce(closed))
			tr, _ := newTransport(t, s)
			for i := range 3 {
				if i > 0 {
					select {
					case <-closed:
					case <-time.After(10 * time.Second):
						t.Fatal("the app never closed its connection")
					}
				}
				resp, body, err := do(t, tr, tc.method, s.url(), tc.body)
				if err != nil || resp.StatusCode != 200 || body != "ok" {
					t.Fatalf("request %d: %v %v %q", i, resp, err, body)
				}
			}
		})
	}
	t.Run("a 408 the app sent on an idle connection is not the answer", func(t *testing.T) {
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, n int64) {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			if n == 1 {
				io.WriteString(c, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				io.Copy(io.Discard, br)
			}
		})
		tr, _ := newTransport(t, s)
		for i := range 2 {
			if resp, body, err := do(t, tr, "GET", s.url(), ""); err != nil || resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("request %d: %v %v %q", i, resp, err, body)
			}
		}
	})
	t.Run("a failure on a fresh connection is not retried", func(t *testing.T) {
		s := newRawServer(t, func(c net.Conn, br *bufio.Reader, _ int64) { http.ReadRequest(br) })
		tr, _ := newTransport(t, s)
		if _, _, err := do(t, tr, "GET", s.url(), ""); err == nil || s.conns.Load() != 1 {
			t.Fatalf("error %v after %d connections", err, s.conns.Load())
		}
	})
}

func TestWhatTheFastPathLeavesToTheFallback(t *testing.T) {
	s := newRawServer(t, keepServing(func(r *http.Request, _ int64) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	}))
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		fast bool
	}{
		{"a GET without a body is fast", func() *http.Request { r, _ := http.NewRequest("GET", s.url(), nil); return r }, true},
		{"a small POST is fast", func() *http.Request { r, _ := http.NewRequest("POST", s.url(), strings.NewReader("x=1")); return r }, true},
		{"an upgrade goes to the fallback", func() *http.Request {
			r, _ := http.NewRequest("GET", s.url(), nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			return r
		}, false},
		{"Expect: 100-continue goes to the fallback", func() *http.Request {
			r, _ := http.NewRequest("PUT", s.url(), strings.NewReader("x"))
			r.Header.Set("Expect", "100-continue")
			return r
		}, false},
		{"a body of unknown length goes to the fallback", func() *http.Request {
			r, _ := http.NewRequest("POST", s.url(), io.NopCloser(strings.NewReader("x")))
			r.ContentLength = -1
			return r
		}, false},
		{"a large body goes to the fallback", func() *http.Request {
			r, _ := http.NewRequest("POST", s.url(), strings.NewReader(strings.Repeat("x", 17<<10)))
			return r
		}, false},
		{"a non-ASCII Host goes to the fallback", func() *http.Request {
			r, _ := http.NewRequest("GET", s.url(), nil)
			r.Host = "bücher.example"
			return r
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, fb := newTransport(t, s)
			resp, err := tr.RoundTrip(tc.req())
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if (fb.n.Load() == 0) != tc.fast {
				t.Fatalf("fallback used %d times", fb.n.Load())
			}
		})
	}
}

func TestRequestIsWrittenFaithfully(t *testing.T) {
	got := make(chan *http.Request, 1)
	s := newRawServer(t, keepServing(func(r *http.Request, _ int64) string {
		b, _ := io.ReadAll(r.Body)
		r.Header.Set("X-Test-Body", string(b)) // read here: keepServing drains the rest
		got <- r
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
	}))
	tr, _ := newTransport(t, s)
	req, _ := http.NewRequest("POST", s.url()+"/a%2Fb/c?q=1&r", strings.NewReader("body!"))
	req.Host = "app.example:8080"
	req.Header.Set("User-Agent", "")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", " 2 ")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := <-got
	b := r.Header.Get("X-Test-Body")
	if r.RequestURI != "/a%2Fb/c?q=1&r" || r.Host != "app.example:8080" || b != "body!" ||
		r.Header.Get("User-Agent") != "" || strings.Join(r.Header["X-Multi"], ",") != "1,2" || r.ContentLength != 5 || len(r.Header) != 3 {
		t.Fatalf("app saw %s %q host %q body %q headers %v", r.Method, r.RequestURI, r.Host, b, r.Header)
	}

	for _, bad := range []http.Header{{"X-Evil": {"a\r\nInjected: yes"}}, {"Bad Name": {"v"}}, {"X-Nul": {"a\x00"}}} {
		req, _ := http.NewRequest("GET", s.url(), nil)
		req.Header = bad
		if _, err := tr.RoundTrip(req); err == nil {
			t.Fatalf("header %q was written", bad)
		}
	}
}

func TestRequestBodyFailuresKeepTheirError(t *testing.T) {
	s := newRawServer(t, keepServing(func(*http.Request, int64) string { return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" }))
	tr, _ := newTransport(t, s)
	limitErr := &http.MaxBytesError{Limit: 3}
	req, _ := http.NewRequest("POST", s.url(), io.NopCloser(io.MultiReader(strings.NewReader("abc"), errReader{limitErr})))
	req.ContentLength = 10
	if _, err := tr.RoundTrip(req); !errors.As(err, &limitErr) {
		t.Fatalf("error %v, want the body's", err)
	}
	if s.conns.Load() > 1 || tr.IdleConns() > 1 {
		t.Fatal("the connection was not kept clean")
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestDialErrorLeavesTheBodyUnread(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := &Transport{Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}, Fallback: http.DefaultTransport}
	body := &readCounter{r: strings.NewReader("x")}
	req, _ := http.NewRequest("POST", "http://"+addr, body)
	req.ContentLength = 1
	_, err := tr.RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" || body.n != 0 {
		t.Fatalf("error %v, %d body reads", err, body.n)
	}
}

type readCounter struct {
	r io.Reader
	n int
}

func (c *readCounter) Read(p []byte) (int, error) { c.n++; return c.r.Read(p) }
