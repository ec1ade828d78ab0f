package testpeer

import (
	"net"
	"sync"
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
