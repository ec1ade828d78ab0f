package testpeer

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// Serve plays a fake app on ln for the rest of the test: each accepted connection is handed to serve on
// its own goroutine and closed when serve returns. When the test ends the listener and every connection
// still open are closed, and Serve's goroutines are waited for, so none outlives the test (goleak).
func Serve(t testing.TB, ln net.Listener, serve func(c net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// ServeUnix is Serve on a new unix socket; it returns the socket's path.
func ServeUnix(t testing.TB, name string, serve func(c net.Conn)) string {
	t.Helper()
	path := SocketPath(t, name)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, ln, serve)
	return path
}

// ServeTCP is Serve on a new loopback TCP port; it returns the address (host:port).
func ServeTCP(t testing.TB, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	Serve(t, ln, serve)
	return ln.Addr().String()
}

// DyingApp is an HTTP/1.1 app that answers the first request on its first connection (200, "warm",
// the connection kept), and once kill is called stops listening and drops the next request on that
// connection after reading it whole, never answering it: a process killed with a request on its
// reused connection. It returns the app's URL.
func DyingApp(t testing.TB) (url string, kill func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	killed := make(chan struct{})
	var once sync.Once
	kill = func() { once.Do(func() { ln.Close(); close(killed) }) }
	var first atomic.Bool
	Serve(t, ln, func(c net.Conn) {
		if !first.CompareAndSwap(false, true) {
			return // its first connection only
		}
		br := bufio.NewReader(c)
		for n := 0; ; n++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if n == 0 {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nwarm")
				continue
			}
			<-killed
			return
		}
	})
	t.Cleanup(kill) // (registered after Serve's, so run before it: Serve waits for the connection's goroutine)
	return "http://" + ln.Addr().String(), kill
}
