//go:build unix

package connpeek

import (
	"net"
	"syscall"
)

func idle(c net.Conn) State {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return Quiet
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Closed
	}
	st := Closed
	var buf [1]byte
	// Control, not Read: Read fails at once on a connection whose deadline passed, before touching the
	// socket. MSG_PEEK leaves the byte for a later read; MSG_DONTWAIT never waits.
	err = rc.Control(func(fd uintptr) {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			st = Unsolicited
		case rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK:
			st = Quiet
		}
	})
	if err != nil {
		return Closed
	}
	return st
}

type peeker struct {
	rc   syscall.RawConn // nil: the connection exposes no socket (Quiet)
	err  error           // SyscallConn's failure (Closed)
	st   State
	buf  [1]byte
	peek func(fd uintptr)
}

func (p *peeker) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	p.rc, p.err = sc.SyscallConn()
	p.peek = func(fd uintptr) {
		n, _, rerr := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
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
