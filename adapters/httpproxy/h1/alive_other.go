//go:build !unix

package h1

import "net"

// alive cannot peek without unix sockets calls: a connection is assumed usable (a stale one then fails
// the request that is not retried).
func alive(net.Conn) bool { return true }
