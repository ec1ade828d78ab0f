//go:build linux

package fastlane

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A loop connects to an app itself when the app is an IP address and port, or a unix socket: a
// non-blocking connect on the loop, its completion reported by the epoll set. (A dial on a goroutine
// would wait for Go's netpoller, which a loop kept busy by its clients gives a turn only every few
// milliseconds: a burst of new clients, or the first requests after a reload, would wait that long
// for each app connection.) A name to resolve is dialed on a goroutine (lp.dial).

// connecting is an app connection whose connect is under way.
type connecting struct {
	lc      *lconn
	gen     uint32
	pool    *upool
	fd      int
	network string
	addr    net.Addr
}

// connect starts the loop's own connect for j: false when the app's target is not one the loop connects
// to itself (nothing was done). The connect counts among the loop's dials until it ends.
func (lp *loop) connect(j dialJob) bool {
	lc, pool := j.lc, j.pool
	network, address, timeout, keepAlive := pool.up.Target()
	var sa unix.Sockaddr
	var addr net.Addr
	family := unix.AF_UNIX
	switch network {
	case "tcp":
		ap, err := netip.ParseAddrPort(address)
		if err != nil || ap.Addr().Zone() != "" {
			return false
		}
		ip := ap.Addr().Unmap()
		addr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, ap.Port()))
		if ip.Is4() {
			family = unix.AF_INET
			sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}
		} else {
			family = unix.AF_INET6
			sa = &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16()}
		}
	case "unix":
		if address == "" {
			return false
		}
		sa, addr = &unix.SockaddrUnix{Name: address}, &net.UnixAddr{Name: address, Net: "unix"}
	default:
		return false
	}
	cn := &connecting{lc: lc, gen: j.gen, pool: pool, fd: -1, network: network, addr: addr}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		cn.done(os.NewSyscallError("socket", err))
		return true
	}
	cn.fd = fd
	if network == "tcp" {
		// As Go's dialer sets them: no Nagle delay, and keep-alive probes at the dialer's period.
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		if keepAlive > 0 {
			secs := int((keepAlive + time.Second - 1) / time.Second)
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, secs)
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, secs)
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9)
		}
	}
	switch err := unix.Connect(fd, sa); err {
	case nil:
		cn.done(nil)
		return true
	case unix.EINPROGRESS, unix.EINTR:
	default:
		cn.done(os.NewSyscallError("connect", err))
		return true
	}
	if err := lp.add(fd, cn, unix.EPOLLOUT|unix.EPOLLET); err != nil {
		cn.done(err)
		return true
	}
	lc.connecting = cn
	if timeout > 0 {
		lp.timers.set(&lc.t, lp.now.Add(timeout))
	}
	return true
}

// dialError is the error Go's dialer returns for err.
func dialError(network string, addr net.Addr, err error) error {
	return &net.OpError{Op: "dial", Net: network, Addr: addr, Err: err}
}

// ready: the connect ended (writable), or failed.
func (cn *connecting) ready(uint32) {
	errno, err := unix.GetsockoptInt(cn.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && errno != 0 {
		err = os.NewSyscallError("connect", unix.Errno(errno))
	}
	if err == nil {
		// A connect that has not ended reports no error either: it is done only when the peer is known.
		if _, perr := unix.Getpeername(cn.fd); perr == unix.ENOTCONN {
			return
		}
	}
	cn.pool.lp.remove(cn.fd)
	cn.done(err)
}

// done hands the connection (or the failure) to the exchange that waits for it.
func (cn *connecting) done(err error) {
	lc, lp := cn.lc, cn.lc.lp
	defer lp.dialEnded()
	if lc.connecting == cn {
		lc.connecting = nil
	}
	if lc.st != stDial || lc.gen != cn.gen || lp.dead {
		if cn.fd >= 0 {
			unix.Close(cn.fd)
		}
		return
	}
	lp.timers.clear(&lc.t)
	if err != nil {
		if cn.fd >= 0 {
			unix.Close(cn.fd)
		}
		lc.fail(dialError(cn.network, cn.addr, err), false)
		return
	}
	c := &loopConn{fd: cn.fd, network: cn.network, raddr: cn.addr}
	if sa, err := unix.Getsockname(cn.fd); err == nil {
		c.laddr = sockaddrAddr(cn.network, sa)
	}
	if c.laddr == nil { // (errors name it: never nil)
		c.laddr = sockaddrAddr(cn.network, &unix.SockaddrUnix{})
		if cn.network == "tcp" {
			c.laddr = &net.TCPAddr{}
		}
	}
	uc := cn.pool.adopt(c, false)
	if uc == nil {
		lc.fail(errNoDescriptor, false)
		return
	}
	lc.sendOn(uc)
}

func (cn *connecting) owner() *lconn { return cn.lc }

// abort: a panic while serving the connect's event ends its exchange.
func (cn *connecting) abort() { cn.lc.abort() }

// cancel ends a connect whose exchange no longer wants it (the client left, or its time passed).
func (cn *connecting) cancel() {
	cn.lc.connecting = nil
	cn.pool.lp.forget(cn.fd)
	unix.Close(cn.fd)
	cn.pool.lp.dialEnded()
}

// loopConn is an app connection the loop connected itself. Its descriptor is the loop's alone (Go's
// netpoller does not watch it, so its events wake nothing but the loop); it is a net.Conn only to be
// closed and named (its addresses in errors). When its exchange leaves the loop, goConn makes it a
// connection of Go's own.
type loopConn struct {
	fd           int
	network      string
	laddr, raddr net.Addr
	closed       bool
}

func (c *loopConn) Read([]byte) (int, error)         { return 0, errLoopConn }
func (c *loopConn) Write([]byte) (int, error)        { return 0, errLoopConn }
func (c *loopConn) LocalAddr() net.Addr              { return c.laddr }
func (c *loopConn) RemoteAddr() net.Addr             { return c.raddr }
func (c *loopConn) SetDeadline(time.Time) error      { return nil }
func (c *loopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

// Close closes the descriptor (once).
func (c *loopConn) Close() error {
	if !c.closed {
		c.closed = true
		unix.Close(c.fd)
	}
	return nil
}

var errLoopConn = errors.New("fastlane: an app connection of the loop is read and written by the loop only")

// goConn returns c as a connection of Go's own (registered with its netpoller), for an exchange that
// leaves the loop; c is closed, the returned connection has its own descriptor. A connection that is
// not a loopConn is returned as it is.
func goConn(c net.Conn) (net.Conn, error) {
	lc, ok := c.(*loopConn)
	if !ok {
		return c, nil
	}
	f := os.NewFile(uintptr(lc.fd), "")
	lc.closed = true // f owns the descriptor now
	nc, err := net.FileConn(f)
	f.Close()
	return nc, err
}

// sockaddrAddr is sa as a net.Addr of network.
func sockaddrAddr(network string, sa unix.Sockaddr) net.Addr {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]).To16(), Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: net.IP(sa.Addr[:]), Port: sa.Port}
	case *unix.SockaddrUnix:
		return &net.UnixAddr{Name: sa.Name, Net: network}
	}
	return nil
}
