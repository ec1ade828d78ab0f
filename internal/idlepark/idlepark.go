// Package idlepark owns "idle connection parking" for the gateway's plain-HTTP (non-TLS) listener: a
// net.Listener wrapper that takes keep-alive client connections which stay idle between requests out of
// net/http's hands, so that an idle connection costs a descriptor and a small record instead of a
// goroutine (its stack) plus net/http's 4 KiB bufio.Reader and 4 KiB bufio.Writer.
//
// How it works. Listener.Install chains an http.Server.ConnState hook. net/http reports StateIdle after a
// response, sets the keep-alive idle deadline with SetReadDeadline and then waits for the next request
// with a Read. That one Read (and only it) reads with the deadline min(idle deadline, now + After), which
// the Conn sets in place of the idle deadline. If a byte arrives, nothing else happens (net/http sets its
// header deadline next; a further Read before that gets the idle deadline back first). If After passes first, Read returns
// an error, net/http's serve loop ends (its buffers go back to its pools, the goroutine exits) and the
// Close that follows does not close the socket but hands it to the parker: one goroutine waiting in
// epoll (EPOLLIN|EPOLLRDHUP|EPOLLONESHOT) on every parked descriptor. When a parked connection becomes
// readable it is returned again by Listener.Accept, and net/http serves it as a new connection (a new
// ReadHeaderTimeout and so on). A parked connection whose peer closed it is closed; one whose idle
// deadline (the server's IdleTimeout, as net/http set it) passes is closed; Listener.Close (which
// http.Server.Shutdown and Close call first) closes every parked connection, as Shutdown closes idle
// connections anyway.
//
// What is never parked: a hijacked connection (WebSocket and other upgrades), a TLS connection (only plain
// listeners are wrapped; under TLS net/http never sees this Conn type), a connection whose state is not
// idle, a connection for which net/http still holds buffered bytes (a pipelined request partly read: its
// idle Read then gets a buffer shorter than the one of the connection's first Read), and a read whose
// idle deadline comes before the park deadline.
//
// Wrap the listener OUTSIDE a connection limiter (internal/connlimit): a parked connection is still open
// and keeps its slot; when it is delivered again by Accept it is not admitted (nor counted) a second time.
//
// A listener wrapper between the Listener and net/http (the fast lane, internal/fastlane) may serve
// connections itself and park them with Park, and may hand connections to net/http under a wrapper of its
// own. The contract for such a wrapper:
//   - Park takes a connection the Listener's Accept returned, idle with nothing read from it left
//     unconsumed, and parks it as net/http's are parked (the idle deadline given, Close, Shutdown); when
//     it becomes readable it comes back from Accept, to the wrapper, as a new connection. ParkAfter says
//     how long the wrapper should let a connection idle first (the same delay net/http's get).
//   - A connection handed to net/http under a wrapper must expose the Conn through NetConn (the
//     ConnState hook looks through it), and net/http must still read through the Conn; a read the
//     wrapper answers itself (bytes it read before the hand-off) must be told with NoteRead, so that the
//     Conn learns net/http's read length from net/http's first Read (below) and never parks bytes
//     net/http holds. The Conn forgets what it learnt from the wrapper's own reads at StateNew.
//
// Memory: what net/http releases is free Go memory, and the process RSS only drops once the GC ran and
// the runtime's scavenger gave the pages back. When everything is idle no allocation triggers a GC, so
// the freed stacks and buffers would stay in RSS; after a burst of at least Options.BurstGC parked
// connections the parker therefore asks for a GC, 1 s after the burst's threshold was reached (at most
// once per 10 s: a burst that reaches it sooner after the last one gets its GC when the 10 s have passed): up to three runtime.GC calls, since the buffers net/http (and the fast lane) put back in
// sync.Pools are only freed by the second cycle after they were put, and the scavenger's goal after a
// cycle is scaled from the heap in use when that cycle's marking ended, before its sweep freed anything:
// only the third cycle sets a goal without the pooled buffers (cycles the runtime ran by itself in that
// second count: a busy process is not made to collect more). The runtime's background scavenger then returns the
// freed pages to the system at its own pace (debug.FreeOSMemory is never called: it would also give back
// the pages the next burst needs). Without that request the runtime's forced GC (every 2 minutes) would
// do the same, later.
//
// Cost: a busy connection pays no read-deadline update more per request than without parking (the park
// deadline replaces the idle one), only a clock reading and a few atomic operations; the first request on a parked
// connection pays its wake-up (epoll, a hand-over to Accept, a new net/http goroutine and buffers): about
// 0.1 ms more on a loopback 2-core test machine. A very short After on clients that pause briefly between
// requests turns that into churn; the gateway's default is 1 s.
//
// Parking needs epoll: on systems other than Linux (build tags) Supported is false and a Listener only
// passes connections through, never parking them.
package idlepark

import (
	"errors"
	"github.com/switchyard/switchyard/internal/netconn"
	"io"
	"net"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Listener.
type Options struct {
	// After is how long a keep-alive connection stays idle in net/http before it is parked; 0 (or less)
	// turns parking off (the Listener then only passes connections through).
	After time.Duration
	// BurstGC is the number of connections parked since the last requested GC after which one
	// runtime.GC is requested (at most once every 10 s, 1 s after the threshold is reached); 0 never
	// requests one.
	BurstGC int
}

// gcEvery is the least time between two requested GCs; gcDelay is how long after a burst reached the
// threshold the GC is requested (so that the rest of the burst is parked by then).
const (
	gcEvery = 10 * time.Second
	gcDelay = time.Second
)

// errParked is what the idle Read returns when the connection is handed to the parker: net/http's serve
// loop ends on it and then calls Close, which parks.
var errParked = errors.New("idlepark: idle connection parked")

// Listener wraps a net.Listener; see the package comment. It is safe for concurrent use.
type Listener struct {
	inner net.Listener
	opts  Options

	acceptc chan accepted
	done    chan struct{}
	once    sync.Once

	mu     sync.Mutex
	ready  []net.Conn // readable parked connections waiting for Accept
	readyc chan struct{}

	p *parker // nil when parking is off or unsupported

	parkedTotal atomic.Uint64

	gcMu      sync.Mutex
	sinceGC   int
	lastGC    time.Time
	gcPending bool
	gcEvery   time.Duration // gcEvery and gcDelay; tests shorten them
	gcDelay   time.Duration
	gcs       atomic.Uint64 // requested GCs done (each of one to three cycles)
}

type accepted struct {
	c   net.Conn
	err error
}

// New wraps ln. When parking is on (opts.After > 0) and Supported, it starts the parker; if the parker
// cannot be started (epoll refused), the error is returned with a Listener that never parks, still usable.
func New(ln net.Listener, opts Options) (*Listener, error) {
	l := &Listener{inner: ln, opts: opts, acceptc: make(chan accepted), done: make(chan struct{}), readyc: make(chan struct{}, 1), gcEvery: gcEvery, gcDelay: gcDelay}
	var err error
	if opts.After > 0 && Supported {
		l.p, err = newParker(l)
		if err != nil {
			l.p = nil
		}
	}
	go l.acceptLoop()
	return l, err
}

// Install chains the Listener's ConnState hook in front of srv.ConnState (which is still called, with
// the same arguments). It must be called before srv serves the Listener. A parked connection is reported
// StateClosed by net/http (its serve loop ended) and StateNew again when it is delivered anew.
func (l *Listener) Install(srv *http.Server) {
	next := srv.ConnState
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if pc := l.find(c); pc != nil {
			pc.state(s)
		}
		if next != nil {
			next(c, s)
		}
	}
}

// find returns the Listener's Conn that c is or wraps (through NetConn: a wrapper such as the fast
// lane's hand-off), or nil.
func (l *Listener) find(c net.Conn) *Conn {
	if pc, ok := netconn.Find[*Conn](c); ok && pc.l == l {
		return pc
	}
	return nil
}

// Parked returns how many connections are parked now.
func (l *Listener) Parked() int {
	if l.p == nil {
		return 0
	}
	return l.p.count()
}

// ParkedTotal returns how many times a connection was parked since the Listener was made.
func (l *Listener) ParkedTotal() uint64 { return l.parkedTotal.Load() }

// Addr returns the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// ParkAfter is how long a connection should stay idle before it is parked: Options.After when the
// Listener parks, else 0 (Park then only closes).
func (l *Listener) ParkAfter() time.Duration {
	if l.p == nil {
		return 0
	}
	return l.opts.After
}

// Park hands c to the parker for a listener wrapper that serves connections itself (see the package
// comment): c is a connection this Listener's Accept returned, idle (a request was served and the next
// one's first byte has not come), with nothing read from it left unconsumed, and its read deadline
// cleared. c is held without a goroutine until it is readable (it is then returned by Accept again, as
// a new connection), its peer closes it, idle passes (zero: no deadline; it is then closed, as the
// server's IdleTimeout closes an idle connection) or the Listener is closed. The caller must not use c
// afterwards. When the Listener does not park (ParkAfter is 0), or c was closed, c is closed.
func (l *Listener) Park(c net.Conn, idle time.Time) {
	if pc, ok := c.(*Conn); ok && pc.l == l {
		pc.mu.Lock()
		closed := pc.closed
		pc.closed = true
		pc.mu.Unlock()
		if closed {
			return
		}
		c = pc.Conn
	}
	if l.p == nil {
		c.Close()
		return
	}
	l.p.park(c, idle)
}

// Close closes the wrapped listener, every parked connection and every readable one not yet delivered,
// and stops the parker. Connections being served are not touched.
func (l *Listener) Close() error {
	var err error
	first := false
	l.once.Do(func() {
		first = true
		close(l.done)
		err = l.inner.Close()
		if l.p != nil {
			l.p.close()
		}
		l.mu.Lock()
		ready := l.ready
		l.ready = nil
		l.mu.Unlock()
		for _, c := range ready {
			c.Close()
		}
	})
	if !first {
		return net.ErrClosed
	}
	return err
}

func (l *Listener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		select {
		case l.acceptc <- accepted{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil && errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Accept returns the next new connection or parked connection that became readable again. Errors of
// the wrapped listener are returned as they are; after Close it returns net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if n := len(l.ready); n > 0 {
			c := l.ready[0]
			l.ready[0] = nil
			l.ready = l.ready[1:]
			if len(l.ready) == 0 {
				l.ready = nil
			} else {
				l.signal()
			}
			l.mu.Unlock()
			return l.wrap(c), nil
		}
		l.mu.Unlock()
		select {
		case a := <-l.acceptc:
			if a.err != nil {
				return nil, a.err
			}
			return l.wrap(a.c), nil
		case <-l.readyc:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
}

func (l *Listener) signal() {
	select {
	case l.readyc <- struct{}{}:
	default:
	}
}

// deliver queues a readable parked connection for Accept (called by the parker).
func (l *Listener) deliver(c net.Conn) {
	l.mu.Lock()
	select {
	case <-l.done:
		l.mu.Unlock()
		c.Close()
		return
	default:
	}
	l.ready = append(l.ready, c)
	l.signal()
	l.mu.Unlock()
}

func (l *Listener) wrap(c net.Conn) net.Conn {
	if l.p == nil {
		return c
	}
	return &Conn{Conn: c, l: l}
}

// parked is called for each connection handed to the parker; it may schedule one GC after a burst.
func (l *Listener) parked() {
	l.parkedTotal.Add(1)
	if l.opts.BurstGC <= 0 {
		return
	}
	l.gcMu.Lock()
	defer l.gcMu.Unlock()
	l.sinceGC++
	if l.gcPending || l.sinceGC < l.opts.BurstGC {
		return
	}
	// A burst that reaches the threshold again soon after the last GC gets its GC when gcEvery has
	// passed, not never: once every connection is parked no later one would ask.
	delay := l.gcDelay
	if wait := l.gcEvery - time.Since(l.lastGC); wait > delay {
		delay = wait
	}
	l.gcPending = true
	start := gcCycles()
	time.AfterFunc(delay, func() {
		ran := false
		select {
		case <-l.done:
		default:
			ran = true
			// Three cycles: net/http's bufio buffers went back to sync.Pools, whose items survive one GC
			// (in the victim cache) and are freed by the second; dead goroutines' stacks are freed by the
			// first. The scavenger's goal after the second still counts the buffers that cycle frees (it
			// is scaled from the runtime's heap in use at mark termination, before the sweep), so the freed
			// pages stayed in RSS in about half of the runs of bench/idleconns (500 connections: 22-29 KiB
			// per connection instead of 8-9); the third sets it from the heap without them.
			// Cycles the runtime ran by itself meanwhile (it does under load, when allocation goes on)
			// count, so a busy process is not made to collect more than it already does.
			for n := gcCycles() - start; n < 3; n++ {
				runtime.GC()
			}
		}
		l.gcMu.Lock()
		l.gcPending = false
		l.sinceGC = 0
		l.lastGC = time.Now()
		if ran {
			l.gcs.Add(1) // counted once the parker counts anew: what a caller that saw it parks next is counted
		}
		l.gcMu.Unlock()
	})
}

// gcCycles is the number of GC cycles the process completed.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// Arming steps of a Conn's idle Read.
const (
	armNone     = iota
	armSawIdle  // net/http reported StateIdle
	armDeadline // ...and then set the idle read deadline, replaced by the park deadline: the next Read is the idle wait
	armRestore  // ...which got bytes: the idle deadline goes back before any further Read (net/http sets its own first, as a rule)
)

// Conn is a connection returned by a parking Listener's Accept. Its Close parks it instead of closing it
// when its idle Read ended with the park deadline; otherwise it behaves as the wrapped connection.
type Conn struct {
	net.Conn
	l *Listener

	arm  atomic.Int32
	idle time.Time // the idle deadline net/http set (zero: none); serve goroutine only
	full int       // the buffer length of the first Read (net/http's empty bufio.Reader), or of NoteRead's

	mu       sync.Mutex
	parking  bool
	closed   bool
	hijacked bool
}

func (c *Conn) state(s http.ConnState) {
	switch s {
	case http.StateNew:
		// net/http starts reading now: what a wrapper above read before it handed c over (the fast lane
		// reads with buffers of its own) says nothing of net/http's read length. StateNew is reported
		// before net/http's serve goroutine starts, and after the wrapper's last read.
		c.full = 0
		c.arm.Store(armNone)
	case http.StateIdle:
		c.arm.Store(armSawIdle)
	case http.StateHijacked:
		c.arm.Store(armNone)
		c.mu.Lock()
		c.hijacked = true
		c.mu.Unlock()
	default:
		c.arm.Store(armNone)
	}
}

// SetReadDeadline records the idle deadline when it is the one net/http sets after StateIdle, and then
// sets the park deadline instead when it comes first (now + After: the idle Read that follows, at once,
// waits until then), so that a busy connection's requests cost no deadline update more than without
// parking.
func (c *Conn) SetReadDeadline(t time.Time) error {
	if c.arm.Load() == armSawIdle {
		c.idle = t
		if park := time.Now().Add(c.l.opts.After); t.IsZero() || park.Before(t) {
			if err := c.Conn.SetReadDeadline(park); err == nil {
				c.arm.Store(armDeadline)
				return nil
			}
		}
	}
	c.arm.Store(armNone)
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline disarms the idle Read and sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.arm.Store(armNone)
	return c.Conn.SetDeadline(t)
}

// Read reads from the connection; the idle Read that follows StateIdle and the idle deadline may end
// with the park error instead (see the package comment).
func (c *Conn) Read(p []byte) (int, error) {
	if c.full == 0 {
		c.full = len(p)
	}
	switch c.arm.Load() {
	case armDeadline:
	case armRestore:
		// A Read after the idle Read got bytes, before net/http set a deadline of its own (it wanted more
		// of the request line): it waits under the idle deadline, as every read of an idle connection.
		if c.arm.CompareAndSwap(armRestore, armNone) {
			c.Conn.SetReadDeadline(c.idle)
		}
		return c.Conn.Read(p)
	default:
		return c.Conn.Read(p)
	}
	if len(p) < c.full {
		// net/http holds buffered bytes (a pipelined request partly read): no parking, the idle deadline.
		c.arm.Store(armNone)
		c.Conn.SetReadDeadline(c.idle)
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p)
	if n > 0 || err == nil {
		c.arm.CompareAndSwap(armDeadline, armRestore) // not if a deadline was set meanwhile
		return n, err
	}
	c.arm.Store(armNone)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return n, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.hijacked {
		return 0, err
	}
	c.parking = true
	return 0, errParked
}

// NoteRead counts a Read of n bytes that a wrapper between net/http and c answered itself (from bytes it
// read from c before handing it to net/http) as a Read c saw: the first one tells c net/http's read
// length (see the package comment). Call it from the goroutine that reads.
func (c *Conn) NoteRead(n int) {
	if c.full == 0 {
		c.full = n
	}
}

// Close closes the connection, or, right after its idle Read returned the park error, hands it to the
// parker. Later calls do nothing.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	parking := c.parking
	c.mu.Unlock()
	if parking && c.l.p != nil {
		c.l.p.park(c.Conn, c.idle)
		return nil
	}
	return c.Conn.Close()
}

// CloseWrite shuts the write side when the wrapped connection can (net/http uses it for a graceful close).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ReadFrom keeps the wrapped connection's zero-copy path (sendfile, splice) for net/http's file answers.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

type writerOnly struct{ io.Writer }

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }
