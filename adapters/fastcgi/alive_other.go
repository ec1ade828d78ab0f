//go:build !unix

package fastcgi

import "net"

// peekIdle cannot look at the socket here; a dead connection is caught by the retry in exchange.
func peekIdle(nc net.Conn) bool { return true }
