//go:build unix

package fastcgi

import (
	"net"
	"syscall"
)

// peekIdle reports whether nc has nothing to read and is still open, with a non-blocking MSG_PEEK on the
// socket: 0 bytes means the peer closed it, data means the peer sent something unasked. (A read with an
// expired deadline cannot tell: Go returns the timeout before touching the socket.)
func peekIdle(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = n < 0 && (rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK)
		return true // never wait for readiness
	})
	return err == nil && idle
}
