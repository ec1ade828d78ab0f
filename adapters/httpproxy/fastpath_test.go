package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// scripted is a loopback app that reads each request and answers it with answer(req) written raw; it
// closes the connection after the answer when answer says so.
func scripted(t *testing.T, answer func(r *http.Request) (string, bool)) string {
	t.Helper()
	return "http://" + testpeer.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			r, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r.Body)
			a, closeAfter := answer(r)
			if _, err := io.WriteString(c, a); err != nil || closeAfter {
				return
			}
		}
	})
}

func TestFastPathFailuresMapLikeTheTransport(t *testing.T) {
	for _, tc := range []struct {
		name, answer, opts, log string
		status                  int
		hang                    bool
	}{
		{"a silent app past the timeout is 504", "", "?timeout=50ms", "timeout", 504, true},
		{"a malformed status line is 502", "HTTP/1.1 abc\r\n\r\n", "", "malformed", 502, false},
		{"a head over 256 KiB is 502", "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("x", 300<<10) + "\r\n\r\n", "", "too large", 502, false},
		{"an app closing before answering is 502", "", "", "EOF", 502, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hang := make(chan struct{})
			u := scripted(t, func(*http.Request) (string, bool) {
				if tc.hang {
					<-hang
				}
				return tc.answer, true
			})
			t.Cleanup(func() { close(hang) }) // runs before scripted's cleanup waits for the app
			_, front, logs := build(t, u+tc.opts)
			code, _ := get(t, client(t), front.URL+"/")
			if code != tc.status || !strings.Contains(logs.String(), tc.log) {
				t.Fatalf("status %d, want %d; log %s", code, tc.status, logs)
			}
		})
	}
}

func TestFastPathForwardsEarlyHintsAndTrailers(t *testing.T) {
	u := scripted(t, func(*http.Request) (string, bool) {
		return "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", false
	})
	_, front, _ := build(t, u)
	var hints []string
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		hints = append(hints, h.Get("Link"))
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", front.URL+"/", nil)
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" || resp.Trailer.Get("X-Checksum") != "abc" || len(hints) != 1 || hints[0] != "</style.css>; rel=preload" {
		t.Fatalf("body %q trailers %v hints %q", b, resp.Trailer, hints)
	}
}

func TestFastPathAbortsATruncatedBody(t *testing.T) {
	u := scripted(t, func(*http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", true
	})
	_, front, _ := build(t, u)
	resp, err := client(t).Get(front.URL + "/")
	if err == nil {
		// the head may have reached the client before the abort (else the connection closed first)
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("reading a truncated answer: %v, want unexpected EOF (an aborted response)", err)
		}
	}
}

func TestFastPathClientGoneAbortsTheAppConnection(t *testing.T) {
	asked, appSawClose := make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		http.ReadRequest(br)
		close(asked)
		br.ReadByte() // until the gateway drops the connection
		close(appSawClose)
	}()
	_, front, logs := build(t, "http://"+ln.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/", nil)
	go func() { <-asked; cancel() }()
	if _, err := client(t).Do(req); !errors.Is(err, context.Canceled) {
		t.Fatalf("client: %v", err)
	}
	select {
	case <-appSawClose:
	case <-time.After(5 * time.Second):
		t.Fatal("the app connection stayed open after the client left")
	}
	<-done
	front.Close() // wait for the handler's log line
	if !strings.Contains(logs.String(), "status=499") {
		t.Fatalf("log: %s", logs)
	}
}

func TestFastPathReusesOneConnectionForSequentialRequests(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "a")
	}))
	app.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			seen[c.RemoteAddr().String()] = true
			mu.Unlock()
		}
	}
	app.Start()
	t.Cleanup(app.Close)
	p, front, _ := build(t, app.URL)
	cl := client(t)
	for range 20 {
		if code, name := get(t, cl, front.URL+"/"); code != 200 || name != "a" {
			t.Fatalf("%d %q", code, name)
		}
	}
	// A client's Connection: close is its own hop's: the app's connection is kept, as ReverseProxy keeps
	// it (it clears the outgoing request's Close).
	for range 5 {
		req, _ := http.NewRequest("GET", front.URL+"/", nil)
		req.Close = true
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "a" {
			t.Fatalf("a client closing its connection: %d %q", resp.StatusCode, resp.Header.Get("X-Backend"))
		}
	}
	mu.Lock()
	n := len(seen)
	mu.Unlock()
	if n != 1 || p.insts[0].fast.IdleConns() != 1 {
		t.Fatalf("%d app connections for 25 sequential requests (5 from clients closing theirs), %d idle", n, p.insts[0].fast.IdleConns())
	}
}

func TestFastPathOptionOff(t *testing.T) {
	b := newBackend(t, "a")
	p, front, _ := build(t, b.srv.URL+"?fast_path=false")
	if p.insts[0].fast != nil {
		t.Fatal("fast_path=false built the fast client")
	}
	if code, name := get(t, client(t), front.URL+"/"); code != 200 || name != "a" {
		t.Fatalf("%d %q", code, name)
	}
}

func TestFastPathServesUnixSocketApps(t *testing.T) {
	sock := testpeer.SocketPath(t, "app.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "unix "+r.Host)
	})}
	go app.Serve(ln)
	t.Cleanup(func() { app.Close() })
	p, front, _ := build(t, "unix://"+sock)
	if p.insts[0].fast == nil {
		t.Fatal("no fast client for a unix app")
	}
	for range 3 {
		if code, name := get(t, client(t), front.URL+"/"); code != 200 || !strings.HasPrefix(name, "unix 127.0.0.1:") {
			t.Fatalf("%d %q", code, name)
		}
	}
	if n := p.insts[0].fast.IdleConns(); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
}

// The line about a connection dropped for unsolicited bytes names the app by its label (its address), as
// every other line does, not by its URL with the options.
func TestFastPathUnsolicitedLineNamesTheAppByItsLabel(t *testing.T) {
	app := scripted(t, func(*http.Request) (string, bool) {
		// One write: the answer, then a second answer no request asked for, already waiting on the
		// connection when the next request looks for an idle one.
		return "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA" + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB", false
	})
	p, front, logs := build(t, app+"?timeout=5s")
	cl := client(t)
	for range 2 {
		if code, _ := get(t, cl, front.URL+"/"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if p.insts[0].fast.Unsolicited() == 0 {
		t.Fatal("Unsolicited() = 0: no connection was dropped")
	}
	label := strings.TrimPrefix(app, "http://")
	if l := logs.String(); !strings.Contains(l, "unsolicited response") || !strings.Contains(l, "app="+label+" ") || strings.Contains(l, "timeout=5s") {
		t.Fatalf("log does not name the app %s by its label alone:\n%s", label, l)
	}
}
