// Command idleconns holds many idle keep-alive client connections open against a front, so that the bench
// script can measure the front's memory per idle connection.
//
// It opens -n TCP connections to -addr (at most -parallel dials at a time), sends one keep-alive GET of
// -path on each, reads the whole response (which must be 200), and then prints one line "ready N" on
// standard output once every connection has been answered. It then holds all of them open, sending nothing,
// until it receives SIGINT or SIGTERM, and exits 0. If any
// connection fails before "ready", it prints the first error on standard error and exits 1. It never
// reconnects: a connection the front closes while held is simply counted on exit (standard error).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "front address host:port")
	n := flag.Int("n", 5000, "connections to open and hold")
	path := flag.String("path", "/small", "path of the one request sent on each connection")
	parallel := flag.Int("parallel", 64, "dials and first requests in flight at a time")
	timeout := flag.Duration("timeout", 30*time.Second, "time allowed for one connection's dial and answer")
	flag.Parse()

	conns, err := open(*addr, *path, *n, *parallel, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idleconns:", err)
		closeAll(conns)
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", len(conns))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	fmt.Fprintf(os.Stderr, "idleconns: %d of %d connections closed by the front while held\n", closedByPeer(conns), len(conns))
	closeAll(conns)
}

// open dials n connections and completes one request on each; it returns the connections opened so far
// and the first error, if any.
func open(addr, path string, n, parallel int, timeout time.Duration) ([]net.Conn, error) {
	var (
		mu       sync.Mutex
		conns    = make([]net.Conn, 0, n)
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, max(parallel, 1))
	)
	req := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: idleconns\r\n\r\n")
	for range n {
		slots <- struct{}{}
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			c, err := request(addr, req, timeout)
			mu.Lock()
			defer mu.Unlock()
			if c != nil {
				conns = append(conns, c)
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	return conns, firstErr
}

// request dials addr, writes req and reads a complete 200 response that keeps the connection alive.
func request(addr string, req []byte, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		return c, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return c, err
	case resp.StatusCode != http.StatusOK:
		return c, fmt.Errorf("status %d", resp.StatusCode)
	case resp.Close:
		return c, errors.New("the front closes the connection after the response")
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// closedByPeer counts the connections that the front has closed (a read sees EOF or a reset at once).
func closedByPeer(conns []net.Conn) int {
	closed := 0
	one := make([]byte, 1)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(one); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			closed++
		}
	}
	return closed
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}
