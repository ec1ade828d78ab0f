//go:build unix

package connpeek

import (
	"net"
	"syscall"
)

// idle makes a peeker for one look (a Peeker keeps one per connection).
func idle(c net.Conn) State {
	var p peeker
	p.init(c)
	return p.idle()
}

type peeker struct {
	rc   syscall.RawConn // nil: the connection exposes no socket (Quiet)
	err  error           // SyscallConn's failure (Closed)
	st   State
	buf  [16]byte // room for a status line's start (TimedOut)
	peek func(fd uintptr)
}

func (p *peeker) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	p.rc, p.err = sc.SyscallConn()
	// Control, not Read: Read fails at once on a connection whose deadline passed, before touching the
	// socket. MSG_PEEK leaves the byte for a later read; MSG_DONTWAIT never waits.
	p.peek = func(fd uintptr) {
		n, _, rerr := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0 && TimedOut(p.buf[:n]):
			p.st = Closed
		case n > 0:
			p.st = Unsolicited
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
			p.st = Quiet
		default:
			p.st = Closed
		}
	}
}

func (p *peeker) idle() State {
	switch {
	case p.err != nil:
		return Closed
	case p.rc == nil:
		return Quiet
	}
	if err := p.rc.Control(p.peek); err != nil {
		return Closed
	}
	return p.st
}
