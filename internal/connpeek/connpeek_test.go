package connpeek

import (
	"net"
	"testing"
	"time"
)

// pair returns the two ends of a loopback TCP connection.
func pair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// eventually polls Idle until it reports want: the peer's close or bytes reach the socket at some point
// after the peer's call returned, and the check must turn then, never consume, and never block.
func eventually(t *testing.T, c net.Conn, want State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := Idle(c)
		if got == want {
			return
		}
		if got != Quiet {
			t.Fatalf("Idle = %v, want %v", got, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Idle stayed %v, want %v", got, want)
		}
		time.Sleep(time.Millisecond) // polling a kernel state that has no notification here
	}
}

func TestIdle(t *testing.T) {
	t.Run("an open quiet connection is quiet", func(t *testing.T) {
		c, _ := pair(t)
		if got := Idle(c); got != Quiet {
			t.Fatalf("Idle = %v", got)
		}
	})
	t.Run("bytes the peer sent unasked are unsolicited and stay readable", func(t *testing.T) {
		c, s := pair(t)
		s.Write([]byte("HTTP/1.1 200 OK\r\n"))
		eventually(t, c, Unsolicited)
		buf := make([]byte, 4)
		if n, _ := c.Read(buf); string(buf[:n]) != "HTTP" {
			t.Fatalf("the peek consumed bytes: read %q", buf[:n])
		}
	})
	t.Run("a 408 the app sent on an idle connection is its close, not unsolicited", func(t *testing.T) {
		c, s := pair(t)
		s.Write([]byte("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n"))
		eventually(t, c, Closed)
	})
	t.Run("a connection the peer closed is closed", func(t *testing.T) {
		c, s := pair(t)
		s.Close()
		eventually(t, c, Closed)
	})
	t.Run("a connection with an expired deadline is still looked at", func(t *testing.T) {
		c, s := pair(t)
		c.SetReadDeadline(time.Unix(1, 0))
		s.Write([]byte("x"))
		eventually(t, c, Unsolicited)
	})
	t.Run("a connection without a socket passes", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if got := Idle(a); got != Quiet {
			t.Fatalf("Idle = %v", got)
		}
	})
}

func TestTimedOut(t *testing.T) {
	for _, tc := range []struct {
		b    string
		want bool
	}{
		{"HTTP/1.1 408 Request Timeout\r\n", true},
		{"HTTP/1.0 408\r\n", true},
		{"HTTP/1.1 408", true},
		{"HTTP/1.1 408x", false},
		{"HTTP/1.1 4", false}, // cut before its status: not known to be a 408
		{"HTTP/1.1 200 OK\r\n", false},
		{"HTTP/2 408 x", false},
		{"http/1.1 408 x", false},
		{"", false},
	} {
		if got := TimedOut([]byte(tc.b)); got != tc.want {
			t.Errorf("TimedOut(%q) = %v, want %v", tc.b, got, tc.want)
		}
	}
}
