package transportguard

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/connpeek"
)

// app is a raw HTTP/1.1 app: every request is answered with "A <path>", followed in the same write by an
// unsolicited "B <path>" when twice is set.
type app struct {
	ln       net.Listener
	twice    bool
	accepted atomic.Int32
	wg       sync.WaitGroup
}

func startApp(t *testing.T, twice bool, conf *tls.Config) *app {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if conf != nil {
		ln = tls.NewListener(ln, conf)
	}
	a := &app{ln: ln, twice: twice}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.accepted.Add(1)
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					out := answer("A", req.URL.Path)
					if a.twice {
						out += answer("B", req.URL.Path)
					}
					if _, err := io.WriteString(c, out); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); a.wg.Wait() })
	return a
}

func answer(letter, path string) string {
	body := letter + " " + path
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// appTLS is a server configuration with httptest's certificate (TLS 1.3: the server sends session tickets).
func appTLS(t *testing.T) *tls.Config {
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	conf := ts.TLS.Clone()
	ts.Close()
	return conf
}

func guarded(conf *tls.Config) *Transport {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 4,
		TLSClientConfig:     conf,
	}
	return Wrap(tr)
}

func get(t *testing.T, rt http.RoundTripper, url string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return string(b)
}

func TestGuardedTransport(t *testing.T) {
	for _, overTLS := range []bool{false, true} {
		scheme, server, client := "http", (*tls.Config)(nil), (*tls.Config)(nil)
		if overTLS {
			scheme, server, client = "https", appTLS(t), &tls.Config{InsecureSkipVerify: true}
		}
		t.Run(scheme+": an answer written right behind another never answers the next request", func(t *testing.T) {
			a := startApp(t, true, server)
			rt := guarded(client)
			defer rt.CloseIdleConnections()
			// Back to back on one client: each request takes the connection the previous answer
			// just released, the B behind that answer in the Transport's read buffer.
			for i := range 40 {
				path := fmt.Sprintf("/%d", i)
				if got := get(t, rt, scheme+"://"+a.ln.Addr().String()+path); got != "A "+path {
					t.Fatalf("request %d got %q", i, got)
				}
			}
		})
		t.Run(scheme+": a well-behaved app keeps one connection", func(t *testing.T) {
			a := startApp(t, false, server)
			rt := guarded(client)
			defer rt.CloseIdleConnections()
			for i := range 40 {
				path := fmt.Sprintf("/%d", i)
				if got := get(t, rt, scheme+"://"+a.ln.Addr().String()+path); got != "A "+path {
					t.Fatalf("request %d got %q", i, got)
				}
			}
			// Over TLS 1.3 the server's session tickets arrive after the handshake: they are not
			// unsolicited answers and do not cost the connection.
			if n := a.accepted.Load(); n != 1 {
				t.Errorf("the app accepted %d connections, want 1 reused", n)
			}
			if n := rt.Unsolicited(); n != 0 {
				t.Errorf("Unsolicited = %d, want 0", n)
			}
		})
	}
}

func TestRecordsFollowTLSFraming(t *testing.T) {
	var r records
	steps := []struct {
		in      []byte
		between bool
	}{
		{[]byte{23, 3, 3}, false},              // half a header
		{[]byte{0, 4, 'a', 'b'}, false},        // the rest of it and half the body
		{[]byte{'c', 'd'}, true},               // the body's end
		{[]byte{22, 3, 3, 0, 0, 21, 3}, false}, // an empty record, then the next header begins
		{[]byte{3, 0, 1, 'x'}, true},
	}
	for i, s := range steps {
		r.advance(s.in)
		if got := r.between(); got != s.between {
			t.Fatalf("step %d: between = %v, want %v", i, got, s.between)
		}
	}
}

// TestTLSReadWithExpiredDeadline records what crypto/tls does with a Read whose deadline has passed, the
// check the guard does not rely on: the Read fails at once as a timeout without reading the socket (records
// still on it stay there; only records crypto/tls already buffered are processed) and leaves the
// connection usable.
func TestTLSReadWithExpiredDeadline(t *testing.T) {
	server := appTLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		tc := tls.Server(c, server)
		if tc.Handshake() != nil {
			accepted <- nil
			return
		}
		accepted <- tc
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
	defer tc.Close()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if v := tc.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("version %x, want TLS 1.3", v)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("server handshake failed")
	}
	defer sc.Close()
	// A Go server sends its session tickets in its handshake flight: the client has usually read them
	// into crypto/tls's buffer with the handshake; whatever is still on the socket must stay there.
	before := connpeek.Idle(raw)
	tc.SetReadDeadline(time.Unix(1, 0))
	var buf [16]byte
	n, err := tc.Read(buf[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read with an expired deadline = %d, %v; want 0 and a timeout", n, err)
	}
	if after := connpeek.Idle(raw); before == connpeek.Unsolicited && after != connpeek.Unsolicited {
		t.Errorf("the socket held bytes and is %v after the Read: the expired Read read the socket", after)
	}
	// The connection still works: the tickets are processed by the next real Read.
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := sc.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	n, err = io.ReadAtLeast(tc, buf[:], 5)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read after the timeout = %q, %v", buf[:n], err)
	}
}
