package fastcgi

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/connpeek"
	"github.com/switchyard/switchyard/internal/testpeer"
)

func TestAliveTellsIdleFromClosedAndChattering(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			addr := "127.0.0.1:0"
			if network == "unix" {
				addr = testpeer.SocketPath(t, "p.sock")
			}
			ln, err := net.Listen(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			p := &pool{network: network, addr: ln.Addr().String(), maxIdle: 4}
			defer p.close()
			tests := []struct {
				name string
				peer func(c net.Conn)
				want bool
			}{
				{name: "an open quiet connection is alive", peer: func(c net.Conn) {}, want: true},
				{name: "a connection the peer closed is dead", peer: func(c net.Conn) { c.Close() }, want: false},
				{name: "a connection the peer wrote to unasked is dead", peer: func(c net.Conn) { c.Write([]byte("x")) }, want: false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c, _, err := p.get(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					defer c.nc.Close()
					sc, err := ln.Accept()
					if err != nil {
						t.Fatal(err)
					}
					defer sc.Close()
					tt.peer(sc)
					if tt.want {
						if idleState(c) != connpeek.Quiet {
							t.Fatal("alive = false for a quiet open connection")
						}
						return
					}
					// The close or the byte reaches our socket at some point: alive must turn false
					// without anything being read through the connection's buffer.
					deadline := time.Now().Add(5 * time.Second)
					for idleState(c) == connpeek.Quiet {
						if time.Now().After(deadline) {
							t.Fatal("alive stayed true")
						}
						time.Sleep(time.Millisecond)
					}
					if c.br.Buffered() != 0 {
						t.Fatal("alive consumed bytes")
					}
				})
			}
		})
	}
}
