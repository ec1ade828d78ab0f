package appconn

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func pipe(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); got <- c }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-got
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func TestADeadlineSetAfterACancellationKeepsItCancelled(t *testing.T) {
	c, _ := pipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, func() { Expire(c) })
	defer stop()
	cancel()
	SetReadDeadline(ctx, c, time.Now().Add(time.Hour)) // would lift the expiry without Keep
	done := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read of a cancelled request stayed blocked")
	}
}

func TestStall(t *testing.T) {
	c, s := pipe(t)
	st := Stall{Limit: 5 * time.Second} // generous: a loaded machine must not turn the trickle into a stall
	st.Start(context.Background(), c)
	buf := make([]byte, 1)
	// A trickle keeps the body alive: each byte arrives within the limit.
	for range 3 {
		s.Write([]byte("x"))
		st.Renew(context.Background(), c)
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("a trickling app was cut: %v", err)
		}
	}
	// Silence past the limit (plus slack) is a stall.
	st = Stall{Limit: 50 * time.Millisecond}
	st.Start(context.Background(), c)
	_, err := c.Read(buf)
	if !st.Stalled(context.Background(), err) {
		t.Fatalf("read after silence: %v, not a stall", err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if st.Stalled(cancelled, err) {
		t.Fatal("a cancelled request's deadline error was called a stall")
	}
	var ne net.Error
	if se := (&StallError{Limit: st.Limit}); !errors.As(error(se), &ne) || !ne.Timeout() {
		t.Fatal("StallError is not a net.Error timeout")
	}
}
