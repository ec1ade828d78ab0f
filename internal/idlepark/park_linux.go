//go:build linux

package idlepark

import (
	"errors"
	"github.com/switchyard/switchyard/internal/netconn"
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Supported says whether this build can park connections (Linux: epoll).
const Supported = true

// parker holds parked connections in one epoll set, waited on by one goroutine.
type parker struct {
	l      *Listener
	epfd   int
	wakefd int // eventfd that wakes the waiting goroutine for close

	mu     sync.Mutex
	conns  map[int32]*entry
	closed bool
	exited chan struct{}
}

// entry is one parked connection.
type entry struct {
	c     net.Conn
	rc    syscall.RawConn
	fd    int32
	timer *time.Timer // idle deadline; nil when there is none
}

func newParker(l *Listener) (*parker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	p := &parker{l: l, epfd: epfd, wakefd: wakefd, conns: map[int32]*entry{}, exited: make(chan struct{})}
	go p.wait()
	return p, nil
}

func (p *parker) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// rawConn finds the descriptor's syscall.RawConn under wrappers that expose NetConn.
func rawConn(c net.Conn) (syscall.RawConn, bool) {
	sc, ok := netconn.Find[syscall.Conn](c)
	if !ok {
		return nil, false
	}
	rc, err := sc.SyscallConn()
	return rc, err == nil
}

// park takes c (idle, nothing buffered) until it is readable, hung up, past idle (zero: no deadline) or
// the parker closes. Whatever fails here closes c.
func (p *parker) park(c net.Conn, idle time.Time) {
	rc, ok := rawConn(c)
	if !ok {
		c.Close()
		return
	}
	e := &entry{c: c, rc: rc, fd: -1}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	var cerr error
	err := rc.Control(func(fd uintptr) {
		e.fd = int32(fd)
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: e.fd}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if err != nil || cerr != nil {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[e.fd] = e
	if !idle.IsZero() {
		e.timer = time.AfterFunc(time.Until(idle), func() { p.expire(e) })
	}
	p.mu.Unlock()
	p.l.parked()
}

// remove takes e out of the epoll set and the table (p.mu held); it reports false when e is no longer
// parked (already delivered, expired or closed).
func (p *parker) remove(e *entry) bool {
	if p.conns[e.fd] != e {
		return false
	}
	delete(p.conns, e.fd)
	if e.timer != nil {
		e.timer.Stop()
	}
	e.rc.Control(func(fd uintptr) {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
	return true
}

// expire closes e when its idle deadline passed while parked.
func (p *parker) expire(e *entry) {
	p.mu.Lock()
	ok := p.remove(e)
	p.mu.Unlock()
	if ok {
		e.c.Close()
	}
}

// wait is the parker goroutine: it sorts epoll events into deliveries, re-arms and closes.
func (p *parker) wait() {
	defer close(p.exited)
	events := make([]unix.EpollEvent, 128)
	var one [1]byte
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		var deliver, shut []net.Conn
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		for _, ev := range events[:n] {
			e := p.conns[ev.Fd]
			if e == nil {
				continue // the eventfd, or a connection already gone
			}
			// The event may be stale (the descriptor number reused by a connection parked since): decide
			// by what the socket holds now, not by the event's flags. Data (even before a FIN or a reset)
			// is delivered, so a request sent right before a half-close is served.
			var got int
			var rerr error
			e.rc.Control(func(fd uintptr) {
				got, _, rerr = unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			})
			switch {
			case rerr == unix.EAGAIN || rerr == unix.EINTR:
				e.rc.Control(func(fd uintptr) {
					ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: e.fd}
					if unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev) != nil {
						rerr = unix.EBADF
					}
				})
				if rerr == unix.EBADF && p.remove(e) {
					shut = append(shut, e.c)
				}
			case rerr == nil && got > 0:
				if p.remove(e) {
					deliver = append(deliver, e.c)
				}
			default: // EOF (peer closed) or a socket error
				if p.remove(e) {
					shut = append(shut, e.c)
				}
			}
		}
		p.mu.Unlock()
		for _, c := range shut {
			c.Close()
		}
		for _, c := range deliver {
			p.l.deliver(c)
		}
	}
}

// close closes every parked connection and stops the goroutine; parks after it close at once.
func (p *parker) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var all []net.Conn
	for _, e := range p.conns {
		if p.remove(e) {
			all = append(all, e.c)
		}
	}
	p.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
	var one = [8]byte{1}
	unix.Write(p.wakefd, one[:])
	<-p.exited
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}
