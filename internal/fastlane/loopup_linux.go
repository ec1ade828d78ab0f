//go:build linux

package fastlane

import (
	"net"
	"time"

	"github.com/switchyard/switchyard/internal/connpeek"
	"golang.org/x/sys/unix"
)

// upool is a loop's pool of one app's idle connections. An idle connection stays in the loop's epoll
// set: whatever it reports while idle (the app closed it, or sent bytes no request asked for) drops it
// at once, so the loop needs no liveness peek before a reuse. Connections come from the app client's
// own pool (TakeIdle) or a dial; they go back to the app client when the loop hands an exchange on.
type upool struct {
	lp      *loop
	up      LoopUpstream
	idle    []*uconn // LIFO: the most recently used is the most likely alive and warm
	max     int
	idleFor time.Duration // 0: no idle limit
}

func (lp *loop) pool(up LoopUpstream) *upool {
	if p := lp.lastPool; p != nil && p.up == up { // most loops serve one app: no map lookup
		return p
	}
	if p := lp.pools[up]; p != nil {
		lp.lastPool = p
		return p
	}
	p := &upool{lp: lp, up: up}
	maxIdle, idle := up.PoolLimits()
	p.max, p.idleFor = maxIdle, idle
	lp.pools[up], lp.lastPool = p, p
	up.OnCloseIdle(func() { lp.post(p.closedIdle) }) // (nothing to do once the loop ended)
	return p
}

// get returns an idle connection of the pool, one taken from the app client's pool, or nil. Each is
// looked at first (one non-blocking peek, as the app client's pool does): the loop learns of bytes an
// idle connection got only at its next round, and a request sent before that would have them read as
// its answer (response-queue poisoning).
func (p *upool) get() *uconn {
	for n := len(p.idle); n > 0; n = len(p.idle) {
		uc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.lp.timers.clear(&uc.t)
		if quiet(uc) {
			return uc
		}
	}
	if c := p.up.TakeIdle(); c != nil {
		return p.adopt(c, true)
	}
	return nil
}

// quiet reports whether uc, an app connection that waited for a request, holds nothing to read: else it
// is closed (the app closed it, or it failed) or dropped as unsolicited (bytes no request asked for).
func quiet(uc *uconn) bool {
	var b [16]byte // room for a status line's start (connpeek.TimedOut)
	got, err := rawPeekInto(uc.fd, b[:])
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		uc.rdy = false
		return true
	case got > 0 && connpeek.TimedOut(b[:got]):
		uc.close() // the app timed the idle connection out (connpeek.TimedOut): closed quietly
	case got > 0:
		uc.pool.unpool(uc)
		uc.detach()
		uc.pool.up.DropUnsolicited(uc.rwc)
	default:
		uc.close()
	}
	return false
}

// adopt puts c, an app connection, on the loop (nil when it exposes no descriptor: closed).
func (p *upool) adopt(c net.Conn, reused bool) *uconn {
	fd, ok := 0, false
	if lc, isLoop := c.(*loopConn); isLoop {
		fd, ok = lc.fd, true
	} else {
		fd, ok = fdOf(c)
	}
	if !ok {
		c.Close()
		return nil
	}
	uc := &uconn{sock: sock{lp: p.lp, fd: fd}, pool: p, rwc: c, reused: reused}
	uc.t.owner = uc
	if err := p.lp.add(fd, uc, sockEvents); err != nil {
		c.Close()
		return nil
	}
	return uc
}

// put takes uc back after a clean answer; it is closed when the pool is full or the app's client
// closed.
func (p *upool) put(uc *uconn) {
	uc.lc = nil
	uc.reused = true
	if uc.hup || p.up.Closed() || p.lp.closing {
		uc.close()
		return
	}
	if len(p.lp.dialq) > 0 {
		// A connection waits for a dial of this app: it takes this one now (a burst of new clients is
		// served by the connections that free up, not by one new app connection each), after the same
		// look as get's.
		if lc := p.lp.waiter(p); lc != nil {
			if quiet(uc) {
				// After the handler that freed it returns: it may still hold the loop's scratch
				// buffers, which sending on at once could fill with another answer.
				uc.lc = lc
				p.lp.handovers = append(p.lp.handovers, uc)
			} else {
				p.lp.dial(dialJob{lc: lc, gen: lc.gen, pool: p})
			}
			return
		}
	}
	if len(p.idle) >= p.max {
		uc.close()
		return
	}
	uc.noOut()
	p.idle = append(p.idle, uc)
	if p.idleFor > 0 {
		p.lp.timers.set(&uc.t, p.lp.now.Add(p.idleFor))
	}
	if uc.rdy {
		quiet(uc) // it spoke while it was answering: look now, as no new edge will come
	}
}

// closedIdle is the app client's CloseIdleConnections: the idle connections close, and the pool of a
// client that closed for good (a gateway a reload retired) is forgotten (its connections in use close
// when their exchange ends).
func (p *upool) closedIdle() {
	p.closeIdle()
	if p.up.Closed() && p.lp.pools[p.up] == p {
		delete(p.lp.pools, p.up)
		if p.lp.lastPool == p {
			p.lp.lastPool = nil
		}
	}
}

// closeIdle closes the pool's idle connections.
func (p *upool) closeIdle() {
	for len(p.idle) > 0 {
		p.idle[len(p.idle)-1].close()
	}
}

// unpool takes uc out of the idle list.
func (p *upool) unpool(uc *uconn) {
	for i, u := range p.idle {
		if u == uc {
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			return
		}
	}
}

// uconn is an app connection on the loop: idle in its pool, or carrying lc's exchange.
type uconn struct {
	sock
	pool   *upool
	rwc    net.Conn
	t      timer // the idle limit
	lc     *lconn
	reused bool
}

func (uc *uconn) ready(ev uint32) {
	uc.note(ev)
	if uc.lc != nil {
		uc.lc.upstreamReady()
		return
	}
	if uc.rdy {
		quiet(uc) // an idle connection spoke: bytes nobody asked for, or its close, drop it
	}
}

// expire is the idle limit.
func (uc *uconn) expire() { uc.close() }

func (uc *uconn) owner() *lconn { return uc.lc }

// abort: a panic while serving uc's event ends its exchange (or closes it, idle).
func (uc *uconn) abort() {
	if lc := uc.lc; lc != nil {
		lc.abort()
		return
	}
	uc.close()
}

// detach takes uc off the loop (the descriptor stays open).
func (uc *uconn) detach() {
	uc.pool.lp.timers.drop(&uc.t)
	uc.pool.lp.remove(uc.fd)
	uc.lc = nil
}

// close closes uc (idle or not).
func (uc *uconn) close() {
	lp := uc.pool.lp
	if uc.lc == nil {
		uc.pool.unpool(uc)
	}
	lp.timers.drop(&uc.t)
	lp.forget(uc.fd)
	uc.lc = nil
	uc.rwc.Close()
}
