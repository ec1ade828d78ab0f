// Package netconn owns the walk through connection wrappers: a net.Conn that wraps another exposes it
// with NetConn (as crypto/tls does, and the gateway's listener wrappers: connection limits, head scan,
// idle parking, the fast lane's hand-off), and what a layer needs of the connection under it (its socket,
// a wrapper of its own) is found by walking down.
package netconn

import "net"

// maxDepth bounds the walk (a wrapper that returned itself would loop); the gateway stacks about five.
const maxDepth = 16

type wrapper interface{ NetConn() net.Conn }

// Find returns the first of c and the connections under it, outermost first, that is a T.
func Find[T any](c net.Conn) (T, bool) {
	for range maxDepth {
		if t, ok := c.(T); ok {
			return t, true
		}
		w, ok := c.(wrapper)
		if !ok {
			break
		}
		c = w.NetConn()
	}
	var zero T
	return zero, false
}

// Innermost returns the connection at the bottom of c's wrappers (c when it wraps none).
func Innermost(c net.Conn) net.Conn {
	for range maxDepth {
		w, ok := c.(wrapper)
		if !ok {
			break
		}
		c = w.NetConn()
	}
	return c
}
