//go:build unix

package h1

import (
	"net"
	"syscall"
)

// alive reports whether an idle connection still looks usable: a non-blocking peek finds neither the
// app's close (EOF), nor an error, nor unsolicited bytes. Connections without a raw descriptor pass.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = true
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		_ = n
		ok = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return ok && err == nil
}
