//go:build linux

package fastlane

import (
	"errors"
	"github.com/switchyard/switchyard/internal/netconn"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The event loop (issue 18, stage 3). A loop holds client connections of the lane and the app
// connections their express exchanges use in one epoll set, and serves them from one goroutine with
// non-blocking reads and writes: no goroutine per connection, no goroutine switch per request, and the
// reads that would wait are not made (epoll says when a socket is readable). The loop's goroutine
// waits through Go's netpoller (the epoll descriptor is itself pollable), so it never blocks a thread
// and timers, other goroutines and GOMAXPROCS=1 behave as anywhere else in the process.
//
// What the loop serves itself: reading request heads (and small bodies) of its connections, the express
// path of a request whose app is a LoopApp (the outgoing request, the app connection from the loop's
// own pool, the answer's head, a simple answer and its body relayed with backpressure), the idle wait
// between requests with its timeouts. At the first thing it does not finish itself, the connection
// leaves the loop for good and goes on as the goroutine lane's (the handler chain, net/http, or the
// app's handler finishing an exchange the loop started): what the client and the app see is the same
// either way (TestFastLaneAnswersAsNetHTTP).

// loopBufSize is the size of the loop's two scratch buffers (an answer read from an app, the bytes
// written to a client), and of a connection's buffer for what a client did not take at once.
const loopBufSize = 16 << 10

// sock is a socket on a loop, registered edge-triggered: what its events said since the reads and writes
// that would block (rdy, wrdy), whether its peer closed (hup), and whether EPOLLOUT is among its events.
// Its owner (a client or an app connection) keeps it and calls note with each event.
type sock struct {
	lp   *loop
	fd   int
	rdy  bool // readable (or hung up) since the last read that found nothing
	wrdy bool // writable since the last write that would block
	hup  bool // the peer shut its side, or the socket failed
	out  bool // EPOLLOUT is in its events
}

// sockEvents are a sock's events without EPOLLOUT, which is added only while a write waits for room.
const sockEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// note records what events say of the socket.
func (s *sock) note(events uint32) {
	if events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.rdy = true
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.hup = true
	}
	if events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.wrdy = true
	}
}

// wantOut adds EPOLLOUT to the socket's events (a write would block); noOut takes it out again.
func (s *sock) wantOut() {
	if !s.out {
		s.out = true
		s.lp.modify(s.fd, sockEvents|unix.EPOLLOUT)
	}
}

func (s *sock) noOut() {
	if s.out {
		s.out = false
		s.lp.modify(s.fd, sockEvents)
	}
}

// pollee is what owns a descriptor of the loop's epoll set.
type pollee interface {
	ready(events uint32)
}

// loop is one event loop; its fields are its goroutine's alone, except the inbox.
type loop struct {
	l      *Listener
	epfd   int
	ep     *os.File
	rc     syscall.RawConn
	wakefd int
	events []unix.EpollEvent
	fds    []pollee // by descriptor
	timers timerHeap
	armed  time.Time // the deadline set on ep
	poll   func(uintptr) bool
	ready  int       // events poll found
	now    time.Time // this round's clock: deadlines and the times exchanges record count from it, as nginx's do

	mu      sync.Mutex
	dead    bool           // the loop ended: post runs nothing
	posting sync.WaitGroup // posts between their check of dead and their write to the eventfd
	inbox   []func()
	spare   []func()
	woken   bool

	pools      map[LoopUpstream]*upool
	lastPool   *upool    // the pool pool returned last
	handovers  []*uconn  // app connections freed for a connection that waited for a dial (uc.lc)
	dialers    int       // dials under way
	dialq      []dialJob // dials waiting for one of them to end
	rbuf, wbuf []byte
	freeStates []*conn // request states given back (see maxFreeStates)
	conns      int     // client connections on the loop
	closing    bool    // the lane closed: idle connections close, busy ones after their answer
	exited     chan struct{}
	curOwner   *lconn // the client connection the event being handled served (for recoverFor)
}

func newLoop(l *Listener) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	lp := &loop{l: l, epfd: epfd, wakefd: wakefd, events: make([]unix.EpollEvent, 256),
		pools: map[LoopUpstream]*upool{}, rbuf: make([]byte, loopBufSize), wbuf: make([]byte, loopBufSize),
		exited: make(chan struct{}), now: time.Now()}
	if err := lp.add(wakefd, waker{lp}, unix.EPOLLIN|unix.EPOLLET); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	// Non-blocking, the epoll descriptor is pollable: os.NewFile registers it with Go's netpoller, which
	// wakes the loop's goroutine when an event is ready.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	lp.ep = os.NewFile(uintptr(epfd), "fastlane-epoll")
	if lp.rc, err = lp.ep.SyscallConn(); err != nil {
		lp.ep.Close()
		unix.Close(wakefd)
		return nil, err
	}
	lp.poll = func(uintptr) bool { // made once: a closure made at each wait would be allocated each time
		n, err := rawEpollWait(lp.epfd, lp.events)
		if err != nil {
			n = 0
		}
		lp.ready = n
		return n > 0
	}
	go lp.run()
	return lp, nil
}

// add puts fd in the epoll set for p.
func (lp *loop) add(fd int, p pollee, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	if err := unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return err
	}
	for fd >= len(lp.fds) {
		lp.fds = append(lp.fds, nil)
	}
	lp.fds[fd] = p
	return nil
}

// modify changes fd's events.
func (lp *loop) modify(fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	return unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// remove takes fd out of the set (for a descriptor that stays open: a connection leaving the loop).
func (lp *loop) remove(fd int) {
	unix.EpollCtl(lp.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	lp.forget(fd)
}

// forget drops fd from the table (before its connection is closed, which takes it out of the set).
func (lp *loop) forget(fd int) {
	if fd < len(lp.fds) {
		lp.fds[fd] = nil
	}
}

// post runs f on the loop's goroutine; false when the loop has ended (f does not run).
func (lp *loop) post(f func()) bool {
	lp.mu.Lock()
	if lp.dead {
		lp.mu.Unlock()
		return false
	}
	lp.inbox = append(lp.inbox, f)
	wake := !lp.woken
	lp.woken = true
	if wake {
		lp.posting.Add(1)
		defer lp.posting.Done()
	}
	lp.mu.Unlock()
	if wake {
		one := [8]byte{1}
		unix.Write(lp.wakefd, one[:]) // (shut closes the eventfd only after this write)
	}
	return true
}

// waker is the eventfd's pollee: it runs what was posted.
type waker struct{ lp *loop }

func (w waker) ready(uint32) {
	lp := w.lp
	var b [8]byte
	unix.Read(lp.wakefd, b[:])
	lp.mu.Lock()
	work := lp.inbox
	lp.inbox = lp.spare[:0]
	lp.woken = false
	lp.mu.Unlock()
	for i, f := range work {
		work[i] = nil
		lp.do(f)
	}
	lp.spare = work[:0]
}

func (lp *loop) run() {
	defer close(lp.exited)
	for {
		n := lp.wait()
		lp.now = time.Now()
		for _, ev := range lp.events[:n] {
			if fd := int(ev.Fd); fd < len(lp.fds) {
				if p := lp.fds[fd]; p != nil {
					lp.dispatch(p, ev.Events)
					lp.handOver()
				}
			}
		}
		for t := lp.timers.due(lp.now); t != nil; t = lp.timers.due(lp.now) {
			lp.expire(t.owner)
		}
		lp.handOver()
		if lp.closing && lp.conns == 0 {
			lp.shut()
			return
		}
	}
}

// A panic while the loop serves one connection (a bug, or a panicking log handler) must not end the
// process and every other connection with it, as net/http's server recovers a handler's: the loop logs
// it as net/http does, closes the connection it concerned (and the app connection and plan of its
// exchange) and goes on. dispatch, expire and do run an event, a timer and posted work so.

// aborter is what a panic while serving it closes: the client connection whose exchange it serves (an
// app connection's event serves its client's), or itself when it serves none.
type aborter interface{ abort() }

// owned is a pollee or timer that serves a client connection's exchange: owner is that connection (nil:
// none now).
type owned interface{ owner() *lconn }

func (lp *loop) dispatch(p pollee, events uint32) {
	// The owner is taken before the event: an app connection's handler may give it back to its pool
	// before it fails, and its client is what must be closed then.
	lp.curOwner = nil
	if o, ok := p.(owned); ok {
		lp.curOwner = o.owner()
	}
	defer lp.recoverFor(p)
	p.ready(events)
}

func (lp *loop) expire(e expirer) {
	lp.curOwner = nil
	defer lp.recoverFor(e)
	e.expire()
}

func (lp *loop) do(f func()) {
	lp.curOwner = nil
	defer lp.recoverFor(nil)
	f()
}

// recoverFor is the deferred recovery of dispatch, expire and do; p is what they served.
func (lp *loop) recoverFor(p any) {
	err := recover()
	if err == nil {
		return
	}
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	lp.l.logf("http: panic serving a connection on the fast lane's event loop: %v\n%s", err, buf)
	var a aborter
	if lc := lp.curOwner; lc != nil {
		a = lc
	} else if o, ok := p.(owned); ok && o.owner() != nil {
		a = o.owner()
	} else if pa, ok := p.(aborter); ok {
		a = pa
	}
	if a != nil {
		lp.do(a.abort) // (a second panic there is logged too, and ends nothing more)
	}
}

// handOver sends the requests of the connections waiting in handovers on the app connections freed
// for them.
func (lp *loop) handOver() {
	for len(lp.handovers) > 0 {
		uc := lp.handovers[0]
		lp.handovers = lp.handovers[1:]
		lc := uc.lc
		uc.lc = nil
		if lc.st == stDial {
			lc.sendOn(uc)
		} else {
			uc.pool.put(uc) // (the client left meanwhile)
		}
	}
	lp.handovers = lp.handovers[:0]
}

// wait returns the number of events ready, waiting for one through Go's netpoller until the next
// timer is due (then 0).
func (lp *loop) wait() int {
	// The wait's deadline moves only when a timer is due before it: one that ends the wait too early
	// costs a round with nothing to do, while moving it costs a runtime timer update, and the earliest
	// timer changes nearly every round (it is usually some connection's idle limit).
	if dl := lp.timers.next(); !dl.IsZero() && (lp.armed.IsZero() || dl.Before(lp.armed)) {
		lp.ep.SetReadDeadline(dl)
		lp.armed = dl
	}
	lp.ready = 0
	err := lp.rc.Read(lp.poll)
	n := lp.ready
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Passed: cleared, or every wait would end at once; the next wait sets the next one.
			lp.ep.SetReadDeadline(time.Time{})
			lp.armed = time.Time{}
		}
		n = 0 // (the epoll descriptor cannot fail while the loop runs)
	}
	return n
}

// close closes the loop's idle connections and app connections; connections serving a request close
// after their answer, and the loop ends when none is left.
func (lp *loop) close() {
	lp.post(func() {
		lp.closing = true
		for _, p := range lp.fds {
			if lc, ok := p.(*lconn); ok && lc.st == stIdle {
				lc.close()
			}
		}
		for _, pool := range lp.pools {
			pool.closeIdle()
		}
	})
}

func (lp *loop) shut() {
	for _, pool := range lp.pools {
		pool.closeIdle()
	}
	lp.mu.Lock()
	lp.dead = true
	late := lp.inbox
	lp.inbox = nil
	lp.mu.Unlock()
	lp.posting.Wait() // a post that saw the loop alive may still write to the eventfd
	for _, f := range late {
		f() // adopts close their connection, dial results theirs
	}
	lp.ep.Close()
	unix.Close(lp.wakefd)
}

// fdOf returns c's descriptor, looked for under wrappers that expose NetConn.
func fdOf(c net.Conn) (int, bool) {
	sc, ok := netconn.Find[syscall.Conn](c)
	if !ok {
		return -1, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, false
	}
	fd := -1
	if rc.Control(func(f uintptr) { fd = int(f) }) != nil {
		return -1, false
	}
	return fd, fd >= 0
}

// timer is a deadline in a loop's heap.
//
// A connection moves its deadline several times per request (the head's limit, the app's, the idle
// limit), nearly always later, and a heap update each time showed in a request's profile (about 3%).
// So the heap is lazy: an entry's key (at) is at or before its deadline (dl) while it is armed, a later
// deadline or a disarm only changes dl, and an entry whose key comes due is re-keyed to its deadline (or
// dropped, disarmed) then. A wait may end early for such an entry, never late.
type timer struct {
	at    time.Time // the heap's key: at or before dl while armed
	dl    time.Time // the deadline; zero: disarmed
	i     int       // index in the heap + 1; 0: not in it
	owner expirer
}

type expirer interface{ expire() }

// timerHeap is a min-heap of timers by key.
type timerHeap []*timer

// next is when the loop must look at its timers next: at or before the earliest deadline (zero: none).
func (h timerHeap) next() time.Time {
	if len(h) == 0 {
		return time.Time{}
	}
	return h[0].at
}

// set (re)arms t at at; a zero at disarms it.
func (h *timerHeap) set(t *timer, at time.Time) {
	if at.IsZero() {
		h.clear(t)
		return
	}
	t.dl = at
	if t.i > 0 {
		if at.Before(t.at) {
			t.at = at
			h.up(t.i - 1)
		}
		return
	}
	t.at = at
	*h = append(*h, t)
	t.i = len(*h)
	h.up(len(*h) - 1)
}

// clear disarms t; its entry leaves the heap when its key comes due, or at drop.
func (h *timerHeap) clear(t *timer) { t.dl = time.Time{} }

// drop disarms t and takes it out of the heap now: for a timer whose owner leaves the loop, which the
// heap must not keep.
func (h *timerHeap) drop(t *timer) {
	t.dl = time.Time{}
	if t.i == 0 {
		return
	}
	i := t.i - 1
	last := len(*h) - 1
	h.swap(i, last)
	(*h)[last] = nil
	*h = (*h)[:last]
	t.i = 0
	if i < last {
		h.down(i)
		h.up(i)
	}
}

// fire expires every timer due at now.
func (h *timerHeap) fire(now time.Time) {
	for t := h.due(now); t != nil; t = h.due(now) {
		t.owner.expire()
	}
}

// due takes the timer with the earliest deadline out of the heap when it is due at now (nil: none is),
// re-keying or dropping the entries it passes whose deadline moved.
func (h *timerHeap) due(now time.Time) *timer {
	for len(*h) > 0 {
		t := (*h)[0]
		if t.at.After(now) {
			return nil
		}
		switch {
		case t.dl.IsZero():
			h.drop(t)
		case !t.dl.Equal(t.at):
			t.at = t.dl
			h.down(0)
		default:
			h.drop(t)
			return t
		}
	}
	return nil
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i = i + 1
	h[j].i = j + 1
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].at.Before(h[p].at) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].at.Before(h[l].at) {
			m = r
		}
		if !h[m].at.Before(h[i].at) {
			return
		}
		h.swap(i, m)
		i = m
	}
}
