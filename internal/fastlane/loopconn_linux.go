//go:build linux

package fastlane

import (
	"context"
	"errors"
	"github.com/switchyard/switchyard/internal/netconn"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// lstate is where a loop connection is.
type lstate uint8

const (
	stIdle  lstate = iota // waiting for a request's first bytes
	stHead                // a head under way (ReadHeaderTimeout)
	stBody                // an express request's body under way (the client's stall limit)
	stDial                // waiting for a new app connection
	stSend                // writing the request to the app
	stWait                // waiting for the answer's head (ResponseHeaderTimeout)
	stRelay               // writing the answer; its body under way
	stOff                 // off the loop (closed, or on a goroutine)
)

// lconn is a client connection on a loop. While idle with nothing buffered it holds no request state
// (c is nil): an idle keep-alive connection costs this struct and its socket.
type lconn struct {
	sock
	rwc        net.Conn
	t          timer
	st         lstate
	big        bool // its requests do not fit the small array (see conn.big)
	served     bool // it served a request: the wait for the next is an idle one
	gen        uint32
	remoteAddr string
	peer       string
	c          *conn
	// obs is a wrapper under the lane that must see the bytes read (internal/headscan), or nil.
	obs readObserver
	// connecting is the loop's own connect to the app under way for the exchange, or nil.
	connecting *connecting
}

// readObserver is a connection wrapper that must see the bytes read through it: the loop reads the
// socket under every wrapper, so it hands them the bytes itself.
type readObserver interface{ ObserveRead(p []byte) }

// observerOf finds the readObserver among c and the connections it wraps.
func observerOf(c net.Conn) readObserver {
	o, _ := netconn.Find[readObserver](c)
	return o
}

// loopExchange is the state of an express exchange the loop carries.
type loopExchange struct {
	x       *Express
	release func()
	app     LoopApp
	pool    *upool
	uc      *uconn
	start   time.Time
	appAt   time.Time
	out     []byte // the outgoing request
	outp    *[]byte
	sent    int
	replay  bool
	retried bool
	header  time.Duration
	stall   time.Duration
	maxHead int
	// The answer: its head's bytes while they come in pieces, then what the relay needs.
	ab      *[]byte
	an      int
	sh      answerShape
	left    int64
	written int64
	keep    bool // the app's connection may be reused after the body
	extra   bool // bytes came after the answer's end: the app's connection is dropped as unsolicited
	pend    []byte
	pendp   *[]byte
	at      Attempt // the exchange's use of the app's instance, until ended (nil: not counted)
	// upstream names the instance of an app of several the exchange was last sent to (the record's);
	// onConn says the attempt on it got a connection (and, as the app's client reads it then, took the
	// request's body: it may not go to another instance after that).
	upstream string
	onConn   bool
	// passed is the time the cascade's apps before this one took (their answers passed it on);
	// draining says the answer being read passes it on too, its head read and its body still coming.
	passed   time.Duration
	draining bool
}

// heavy holds the request state of loop connections while they serve a request.
var heavy = sync.Pool{New: func() any { return new(conn) }}

// maxFreeStates bounds a loop's own list of request states given back: a connection takes one and gives
// it back at every request, and the list, the loop's alone, costs neither sync.Pool's per-P bookkeeping
// nor an atomic operation; beyond it they go to heavy.
const maxFreeStates = 64

// adopt puts rwc, a new connection of the lane, on the loop.
func (lp *loop) adopt(rwc net.Conn) {
	if lp.closing || lp.dead {
		rwc.Close()
		return
	}
	fd, ok := fdOf(rwc)
	if !ok {
		lp.l.goServe(rwc) // no descriptor to poll: the goroutine lane serves it
		return
	}
	lc := &lconn{sock: sock{lp: lp, fd: fd}, rwc: rwc, remoteAddr: rwc.RemoteAddr().String(), obs: observerOf(rwc)}
	lc.t.owner = lc
	if err := lp.add(fd, lc, sockEvents); err != nil {
		lp.l.goServe(rwc)
		return
	}
	lp.conns++
	lp.l.onLoops.Add(1)
	lc.rdy = true // the request is often there already
	if d := lp.l.srv.ReadHeaderTimeout; d > 0 {
		lp.timers.set(&lc.t, lp.now.Add(d))
	}
	lc.readRequest()
}

// toLoop gives rwc, an idle connection of a goroutine of the lane that served a request, to an event
// loop until its next request (idle: its idle deadline, zero none); false when there is no loop.
func (l *Listener) toLoop(rwc net.Conn, remoteAddr string, idle time.Time) bool {
	n := len(l.loops)
	if n == 0 {
		return false
	}
	lp := l.loops[int(l.next.Add(1))%n]
	if !lp.post(func() { lp.adoptIdle(rwc, remoteAddr, idle) }) {
		rwc.Close()
	}
	return true
}

// adoptIdle puts rwc, a connection that served a request and waits for its next one, on the loop.
func (lp *loop) adoptIdle(rwc net.Conn, remoteAddr string, idle time.Time) {
	if lp.closing || lp.dead || lp.l.closing.Load() {
		rwc.Close()
		return
	}
	fd, ok := fdOf(rwc)
	if !ok {
		rwc.Close()
		return
	}
	lc := &lconn{sock: sock{lp: lp, fd: fd}, rwc: rwc, remoteAddr: remoteAddr, obs: observerOf(rwc), served: true}
	lc.t.owner = lc
	if err := lp.add(fd, lc, sockEvents); err != nil {
		rwc.Close()
		return
	}
	lp.conns++
	lp.l.onLoops.Add(1)
	lp.l.returned.Add(1)
	if !idle.IsZero() {
		lp.timers.set(&lc.t, idle)
	}
	lc.rdy = true // its next request may be there already
	lc.readRequest()
}

func (lc *lconn) ready(ev uint32) {
	lc.note(ev)
	switch lc.st {
	case stIdle, stHead, stBody:
		if lc.rdy {
			lc.readRequest()
		}
	case stDial, stSend, stWait:
		if lc.hup {
			lc.checkGone()
		}
	case stRelay:
		x := &lc.c.lx
		if len(x.pend) > 0 {
			if lc.wrdy {
				lc.flush()
			}
		} else if lc.hup {
			lc.checkGone()
		}
	}
}

// state returns the connection's request state, made when it has none.
func (lc *lconn) state() *conn {
	if lc.c == nil {
		var c *conn
		if n := len(lc.lp.freeStates); n > 0 {
			c = lc.lp.freeStates[n-1]
			lc.lp.freeStates[n-1] = nil
			lc.lp.freeStates = lc.lp.freeStates[:n-1]
		} else {
			c = heavy.Get().(*conn)
		}
		c.l, c.rwc, c.remoteAddr, c.peer, c.big = lc.lp.l, lc.rwc, lc.remoteAddr, lc.peer, lc.big
		c.takeBuf(nil)
		lc.c = c
	}
	return lc.c
}

// dropState gives back the request state of a connection with nothing buffered.
func (lc *lconn) dropState() {
	c := lc.c
	if c == nil || c.n > 0 {
		return
	}
	lc.c = nil
	lc.big, lc.peer = c.big, c.peer
	c.releaseBufs()
	c.connState = connState{names: c.names, gone: c.gone} // (gone is bound to c: made once)
	if len(lc.lp.freeStates) < maxFreeStates {
		lc.lp.freeStates = append(lc.lp.freeStates, c)
		return
	}
	heavy.Put(c)
}

// readRequest reads what the client sent and serves it when it is a whole request.
func (lc *lconn) readRequest() {
	for lc.readSome() && lc.advance() {
	}
}

// readSome reads what the socket holds into the request buffer; false when the connection left the
// loop or has nothing buffered.
func (lc *lconn) readSome() bool {
	c := lc.state()
	for lc.rdy {
		if c.n == len(c.buf) && !c.grow() {
			break // a full buffer: Parse decides (a head this long is not the lane's)
		}
		m, err := rawRead(lc.fd, c.buf[c.n:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			lc.rdy = false
			break
		}
		if m <= 0 {
			if c.n == 0 {
				lc.close() // net/http closes quietly too: nothing read, and EOF or a reset
				return false
			}
			if lc.st == stBody {
				// The client left (or failed) within the body of a request whose plan the loop holds:
				// as when its body stalls, the handler chain serves the request from what is buffered,
				// from the request's start, and its read of the rest fails as net/http's would.
				lc.bodyGone()
				return false
			}
			if err != nil {
				c.readErr = os.NewSyscallError("read", err)
			} else {
				c.readErr = io.EOF
			}
			lc.handOff() // net/http answers what it makes of the bytes and the error
			return false
		}
		if lc.obs != nil {
			lc.obs.ObserveRead(c.buf[c.n : c.n+m])
		}
		c.n += m
		if c.n < len(c.buf) {
			// A short read drained the socket (bytes that come later bring a new edge), unless the
			// client's close came with the bytes: the read that finds it is still to be made.
			lc.rdy = lc.hup
			break
		}
	}
	if c.n == 0 {
		lc.dropState()
		return false
	}
	return true
}

// advance serves the bytes read when they make a request; true when more must be read first (and a
// read is due).
func (lc *lconn) advance() bool {
	lp := lc.lp
	c := lc.c
	h := &c.head
	switch lc.st {
	case stIdle:
		lc.st = stHead
		if d := lp.l.srv.ReadHeaderTimeout; d > 0 && lc.served {
			lp.timers.set(&lc.t, lp.now.Add(d))
		} else if d <= 0 {
			lp.timers.clear(&lc.t)
		}
		fallthrough
	case stHead:
		switch Parse(c.buf[:c.n], h, lp.l.lim) {
		case Incomplete:
			if c.n == len(c.buf) && !c.grow() {
				lc.handOff()
				return false
			}
			return lc.rdy
		case NotMine:
			lc.handOff()
			return false
		}
		lc.express()
	case stBody:
		if int64(c.n-c.head.Size) < c.head.ContentLength {
			return lc.rdy
		}
		lc.send()
	}
	return lc.st == stBody && lc.rdy
}

// express starts h's express exchange on the loop, or hands the connection to a goroutine when the loop
// does not carry it.
func (lc *lconn) express() {
	c := lc.c
	h := &c.head
	if lc.lp.l.router == nil {
		lc.handOff()
		return
	}
	x, release := c.expressPlan(h)
	if x == nil {
		lc.toGoroutine(nil)
		return
	}
	app, ok := x.App.(LoopApp)
	var up LoopUpstream
	if ok {
		up = app.LoopUpstream()
	}
	for nx := x.Next; nx != nil && up != nil; nx = nx.Next {
		la, ok := nx.App.(LoopApp)
		if _, isHandler := nx.App.(http.Handler); !ok || !isHandler || la.LoopUpstream() == nil {
			up = nil // a cascade whose apps the loop does not all carry (passOn)
		}
	}
	if up == nil {
		release()
		lc.toGoroutine(nil)
		return
	}
	lx := &c.lx
	*lx = loopExchange{x: x, release: release, app: app, pool: lc.lp.pool(up), start: lc.lp.now}
	lx.header, lx.stall, lx.maxHead = up.AnswerLimits()
	if int64(c.n-h.Size) < h.ContentLength {
		lc.st = stBody
		if d := x.ClientStall; d > 0 {
			lc.lp.timers.set(&lc.t, lx.start.Add(d))
		} else {
			lc.lp.timers.clear(&lc.t)
		}
		if h.Size+int(h.ContentLength) > len(c.buf) {
			c.grow()
			if Parse(c.buf[:c.n], h, lc.lp.l.lim) != Mine { // the head's views follow the bytes
				lc.abandonPlan()
				lc.toGoroutine(nil)
				return
			}
		}
		return
	}
	lc.send()
}

// bodyGone hands a request whose body stopped coming (the client's stall limit passed, or the client
// left) to the handler chain, which serves it from what is buffered, counted from the request's start;
// the loop's plan is released.
func (lc *lconn) bodyGone() {
	start := lc.c.lx.start
	lc.abandonPlan()
	lc.toGoroutine(func(c *conn) (bool, bool) { return c.serveHandler(&c.head, nil, nil, "", start) })
}

// abandonPlan releases the plan of an exchange that was not started.
func (lc *lconn) abandonPlan() {
	lx := &lc.c.lx
	if lx.release != nil {
		lx.release()
	}
	*lx = loopExchange{}
}

// send writes the whole request to an app connection.
func (lc *lconn) send() {
	c := lc.c
	h := &c.head
	lx := &c.lx
	if !c.prepareExchange(h, lx.x) {
		lc.abandonPlan()
		lc.toGoroutine(nil)
		return
	}
	b := c.ex.Scratch[:0]
	if need := h.Size + len(c.ex.Body) + 512 + c.ex.Mount.Extra(); need > cap(b) {
		lx.outp = outBufs.Get().(*[]byte)
		if need > cap(*lx.outp) {
			*lx.outp = make([]byte, 0, need)
		}
		b = (*lx.outp)[:0]
	}
	b, replay, ok := lx.app.AppendOutgoing(b, &c.ex)
	var err error
	if ok {
		lx.at, err = lx.app.Attempt(replay)
	}
	if !ok || err != nil {
		lc.putOut()
		lc.abandonPlan()
		lc.toGoroutine(nil)
		return
	}
	lx.out, lx.replay = b, replay
	lc.onInstance()
	if x := lx.x; x.Started != nil {
		x.Started()
	}
	lc.lp.l.served.Add(1)
	lx.appAt = lc.lp.now
	lc.lp.timers.clear(&lc.t)
	lc.connect(false)
}

func (lc *lconn) putOut() { lc.c.lx.putBuf(&lc.c.lx.outp) }

// connect gets an app connection (fresh: a new one, for a retry) and sends the request on it.
func (lc *lconn) connect(fresh bool) {
	lx := &lc.c.lx
	if !fresh {
		if uc := lx.pool.get(); uc != nil {
			lc.sendOn(uc)
			return
		}
	}
	lc.st = stDial
	lc.gen++
	lc.lp.dial(dialJob{lc: lc, gen: lc.gen, pool: lx.pool, fresh: fresh})
}

// maxDialers bounds a loop's connects and dials under way: a dial takes a goroutine (it may resolve a
// name and wait), and a burst of new clients must make neither one goroutine nor one app connection per
// client: the app connections that free up meanwhile serve the requests that wait.
const maxDialers = 16

// dialJob is a connection waiting for a new app connection.
type dialJob struct {
	lc    *lconn
	gen   uint32
	pool  *upool
	fresh bool // a retry after a stale connection: only a new connection will do
}

// wanted says whether j's connection still waits for it.
func (j dialJob) wanted() bool { return j.lc.st == stDial && j.lc.gen == j.gen }

// dial starts j's dial, or queues it while maxDialers are under way.
func (lp *loop) dial(j dialJob) {
	if lp.dialers == maxDialers {
		lp.dialq = append(lp.dialq, j)
		return
	}
	lp.dialers++
	if lp.connect(j) {
		return
	}
	go func() {
		c, err := j.pool.up.Dial()
		if !lp.post(func() { lp.dialed(j, c, err) }) && c != nil {
			c.Close()
		}
	}()
}

// dialed hands a dial's result on.
func (lp *loop) dialed(j dialJob, c net.Conn, err error) {
	j.lc.dialed(j.gen, c, err)
	lp.dialEnded()
}

// dialEnded starts the next queued dial that is still wanted, once one ended.
func (lp *loop) dialEnded() {
	lp.dialers--
	for len(lp.dialq) > 0 && lp.dialers < maxDialers {
		next := lp.dialq[0]
		lp.dialq[0] = dialJob{}
		lp.dialq = lp.dialq[1:]
		if next.wanted() {
			lp.dial(next)
		}
	}
	if len(lp.dialq) == 0 {
		lp.dialq = nil // the burst's backing array goes
	}
}

// waiter takes from the dial queue the first connection that waits for an app connection of pool and
// would take a reused one (nil: none).
func (lp *loop) waiter(pool *upool) *lconn {
	for i, j := range lp.dialq {
		if j.pool != pool || j.fresh || !j.wanted() {
			continue
		}
		lp.dialq = append(lp.dialq[:i], lp.dialq[i+1:]...)
		return j.lc
	}
	return nil
}

// dialed goes on with a dial's result.
func (lc *lconn) dialed(gen uint32, c net.Conn, err error) {
	if lc.st != stDial || lc.gen != gen || lc.lp.dead {
		if c != nil {
			c.Close() // the client went away meanwhile
		}
		return
	}
	lx := &lc.c.lx
	if err != nil {
		lc.fail(err, false)
		return
	}
	uc := lx.pool.adopt(c, false)
	if uc == nil {
		lc.fail(errNoDescriptor, false)
		return
	}
	lc.sendOn(uc)
}

func (lc *lconn) sendOn(uc *uconn) {
	lx := &lc.c.lx
	lx.uc, uc.lc, lx.onConn = uc, lc, true
	lx.sent = 0
	lc.st = stSend
	uc.wrdy = true
	lc.write()
}

// write writes the rest of the request.
func (lc *lconn) write() {
	lx := &lc.c.lx
	uc := lx.uc
	for lx.sent < len(lx.out) {
		if !uc.wrdy {
			return
		}
		m, err := rawWrite(uc.fd, lx.out[lx.sent:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			uc.wrdy = false
			uc.wantOut()
			return
		}
		if err != nil {
			lc.failed("write", err, true)
			return
		}
		lx.sent += m
	}
	lc.st = stWait
	if lx.header > 0 {
		lc.lp.timers.set(&lc.t, lc.lp.now.Add(lx.header))
	}
	lc.readAnswer()
}

// upstreamReady goes on with the exchange when its app connection reported an event.
func (lc *lconn) upstreamReady() {
	switch lc.st {
	case stSend:
		lc.write()
	case stWait:
		lc.readAnswer()
	case stRelay:
		if len(lc.c.lx.pend) == 0 {
			lc.pump()
		}
	}
}

// failed ends an exchange whose app connection failed (op, errno; noBytes: before any byte of the
// answer): a stale reused connection is retried once for a replayable request, as the app's client
// does; anything else is answered by the app's handler.
func (lc *lconn) failed(op string, errno error, noBytes bool) {
	lx := &lc.c.lx
	uc := lx.uc
	lx.uc = nil
	reused := uc.reused
	uc.close()
	if noBytes && reused && lx.replay && !lx.retried {
		lx.retried = true
		lc.lp.timers.clear(&lc.t)
		lc.connect(true)
		return
	}
	lc.fail(lx.pool.up.IOError(uc.rwc, op, errno, noBytes), false)
}

// readAnswer reads the answer's head.
func (lc *lconn) readAnswer() {
	lp := lc.lp
	c := lc.c
	lx := &c.lx
	uc := lx.uc
	for uc.rdy {
		buf := lp.rbuf
		if lx.ab != nil {
			buf = *lx.ab
		}
		m, err := rawRead(uc.fd, buf[lx.an:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			uc.rdy = false
			return
		}
		if m <= 0 {
			if err == nil {
				err = io.EOF
			}
			if lx.an == 0 {
				lc.failed("read", err, true)
				return
			}
			lc.resume(buf[:lx.an], false) // the app's client reads the error itself, after the bytes
			return
		}
		if lx.an+m < len(buf) {
			uc.rdy = uc.hup // a short read drained the socket (but for the close, when it came too)
		}
		lx.an += m
		end := lx.pool.up.HeadEnd(buf[:lx.an])
		if end < 0 {
			if lx.an == len(buf) || lx.an >= lx.maxHead {
				lc.resume(buf[:lx.an], false) // a long head: the app's client reads it
				return
			}
			lc.keepAnswer(buf)
			continue
		}
		h := &c.head
		a, ok := lx.pool.up.ParseAnswer(buf[:end], str(h.Method) == http.MethodHead)
		if a.Status() == http.StatusRequestTimeout && uc.reused {
			a.Free()
			lx.uc = nil
			uc.close()
			if lx.replay && !lx.retried {
				lx.retried = true
				lx.an = 0
				lc.freeAnswerBuf()
				lc.lp.timers.clear(&lc.t)
				lc.connect(true)
				return
			}
			lc.fail(lx.pool.up.Stale408(), false)
			return
		}
		if lx.x.Next != nil && lx.x.Pass(a.Status()) {
			// An answer that passes the request on: read whole (its body as the head says, nothing
			// after it), it is dropped here and the next app asked; one still coming, up to the
			// buffer's size, is read on (parsed again at each read); any other is the handler chain's
			// cascade's to discard (all read so far goes with it).
			first := buf[end:lx.an]
			whole, short := len(first) == 0, false
			if a.HasBody() {
				cl := a.ContentLength()
				whole = int64(len(first)) == cl
				short = ok && int64(len(first)) < cl && int64(end)+cl <= loopBufSize
			}
			status, keep := a.Status(), a.Keep()
			a.Free()
			switch {
			case ok && whole:
				lc.passOn(status, keep)
			case short:
				lc.keepAnswer(buf)
				if !lx.draining {
					lx.draining = true // the head's wait is over: the body's stall limit, as the relay's
					if lx.stall > 0 {
						lp.timers.set(&lc.t, lp.now.Add(lx.stall))
					} else {
						lp.timers.clear(&lc.t)
					}
				}
				continue
			default:
				lc.resume(buf[:lx.an], false)
			}
			return
		}
		if !ok {
			a.Free()
			lc.resume(buf[:lx.an], false)
			return
		}
		lc.relay(a, buf[end:lx.an])
		return
	}
}

// keepAnswer keeps what was read of the answer so far (buf[:an]) in the exchange's own buffer, when it
// is still in the loop's.
func (lc *lconn) keepAnswer(buf []byte) {
	lx := &lc.c.lx
	if lx.ab != nil {
		return
	}
	lx.ab = outBufs.Get().(*[]byte)
	if cap(*lx.ab) < loopBufSize {
		*lx.ab = make([]byte, 0, loopBufSize)
	}
	*lx.ab = (*lx.ab)[:loopBufSize]
	copy(*lx.ab, buf[:lx.an])
}

// passOn ends the exchange with the app of a cascade whose answer (status; keep: the connection may be
// reused) passes the request on, its head and whole body read and nothing after them: the app's
// connection goes back to its pool, and the request goes to the next app.
func (lc *lconn) passOn(status int, keep bool) {
	c := lc.c
	lx := &c.lx
	uc := lx.uc
	lx.uc = nil
	if keep {
		lx.pool.put(uc)
	} else {
		uc.close()
	}
	lc.endAttempt(nil, status, false)
	now := lc.lp.now
	lx.passed += now.Sub(lx.appAt)
	lx.appAt = now // the next app's time counts from here
	lc.freeAnswerBuf()
	lx.an, lx.retried, lx.draining = 0, false, false
	next := lx.x.Next
	app := next.App.(LoopApp) // (express checked every app of the cascade)
	up := app.LoopUpstream()
	lx.x, lx.app, lx.pool = next, app, lc.lp.pool(up)
	lx.header, lx.stall, lx.maxHead = up.AnswerLimits()
	c.ex.Mount = next.Mount
	b, replay, ok := app.AppendOutgoing(lx.out[:0], &c.ex)
	var err error
	if ok {
		lx.at, err = app.Attempt(replay)
	}
	if !ok || err != nil {
		// The app does not take the request on its direct path, or may not be tried: its own handler
		// answers it, in the cascade's place.
		lc.rest(next.App.(http.Handler), false)
		return
	}
	lx.out, lx.replay = b, replay
	lc.onInstance()
	lc.lp.timers.clear(&lc.t)
	lc.connect(false)
}

// onInstance sends the exchange on the connections of its attempt's instance, when the app has several.
func (lc *lconn) onInstance() {
	lx := &lc.c.lx
	if ia, ok := lx.at.(InstanceAttempt); ok {
		lx.pool, lx.upstream = lc.lp.pool(ia.Upstream()), ia.Name()
	}
}

func (lc *lconn) freeAnswerBuf() { lc.c.lx.putBuf(&lc.c.lx.ab) }

// putBuf gives the buffer *bp (when there is one) back to outBufs.
func (lx *loopExchange) putBuf(bp **[]byte) {
	if *bp != nil {
		**bp = (**bp)[:0]
		outBufs.Put(*bp)
		*bp = nil
	}
}

// freeBufs gives back the exchange's buffers: the outgoing request's, the answer head's and what waits
// for the client.
func (lx *loopExchange) freeBufs() {
	lx.putBuf(&lx.outp)
	lx.putBuf(&lx.ab)
	lx.putBuf(&lx.pendp)
	lx.pend = nil
}

// checkGone ends the exchange when the client closed its side while the app had not answered: a byte
// pipelined behind the request is not a departure (net/http's background read keeps it).
func (lc *lconn) checkGone() {
	n, err := rawPeek(lc.fd)
	if n > 0 || err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	lx := &lc.c.lx
	switch lc.st {
	case stWait:
		if lx.draining {
			// The answer under way passes the request on: the handler chain's cascade reads it on for a
			// request whose context ended, as it would have.
			lc.resume((*lx.ab)[:lx.an], true)
			return
		}
		fallthrough
	case stDial, stSend:
		if uc := lx.uc; uc != nil {
			lx.uc = nil
			uc.close()
		}
		if cn := lc.connecting; cn != nil {
			cn.cancel()
		}
		lc.gen++
		lc.fail(context.Canceled, true)
	case stRelay: // the app is slow with its body and the client left: as the express path's Read
		lx.app.Undelivered(str(lc.c.head.Method), lc.c.appPath(), lx.upstream, 499, true, context.Canceled)
		lc.endRelay(false)
	}
}

// relay writes a, a simple answer whose first body bytes are first, and goes on with its body.
func (lc *lconn) relay(a AnswerHead, first []byte) {
	lp := lc.lp
	c := lc.c
	lx := &c.lx
	h := &c.head
	lp.timers.clear(&lc.t)
	lp.l.expressed.Add(1)
	lp.l.looped.Add(1)
	rec := &c.rec
	*rec = Record{Client: c.remoteAddr, RequestID: c.ex.RequestID, TraceParent: str(c.traceParent), Start: lx.start, AppStart: lx.appAt.Add(-lx.passed)}
	b, sh := c.appendAnswerHead(lp.wbuf[:0], h, a, rec, lp.now)
	lx.sh = sh
	lx.keep = a.Keep()
	if a.HasBody() {
		lx.left = a.ContentLength()
	}
	a.Free()
	lc.st = stRelay
	take := min(int64(len(first)), lx.left)
	body := first[:take]
	lx.extra = int64(len(first)) > take
	lx.left -= take
	lx.written += take
	if lx.left == 0 {
		lc.finishUpstream()
		lc.record(false)
	}
	if len(body) <= cap(b)-len(b) {
		b = append(b, body...)
		body = nil
	}
	// (A write that fails ends the exchange: the connection is off the loop then.)
	if !lc.writeClient(b) {
		if lc.st == stRelay {
			if len(body) > 0 {
				lc.queue(body)
			}
			lc.freeAnswerBuf()
		}
		return
	}
	if len(body) > 0 && !lc.writeClient(body) {
		if lc.st == stRelay {
			lc.freeAnswerBuf()
		}
		return
	}
	lc.freeAnswerBuf()
	if lx.left == 0 {
		lc.answered()
		return
	}
	lc.pump()
}

// queue appends p to what waits for the client.
func (lc *lconn) queue(p []byte) {
	lx := &lc.c.lx
	if lx.pendp == nil {
		lx.pendp = outBufs.Get().(*[]byte)
		*lx.pendp = (*lx.pendp)[:0]
	}
	if len(lx.pend) == 0 {
		*lx.pendp = (*lx.pendp)[:0]
	}
	*lx.pendp = append(*lx.pendp, p...)
	lx.pend = *lx.pendp
	lc.wantOut()
}

// pump relays the body: reads from the app and writes to the client while neither would block.
func (lc *lconn) pump() {
	lp := lc.lp
	lx := &lc.c.lx
	uc := lx.uc
	for lx.left > 0 && len(lx.pend) == 0 {
		if !uc.rdy {
			if lx.stall > 0 {
				lp.timers.set(&lc.t, lp.now.Add(lx.stall))
			}
			return
		}
		want := int(min(lx.left, int64(len(lp.rbuf))))
		m, err := rawRead(uc.fd, lp.rbuf[:want])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			uc.rdy = false
			continue
		}
		if m <= 0 {
			if err == nil {
				err = io.EOF
			}
			c := lc.c
			lx.app.Undelivered(str(c.head.Method), c.appPath(), lx.upstream, c.rec.Status, false, lx.pool.up.IOError(uc.rwc, "read", err, false))
			lc.endRelay(true)
			return
		}
		if m < want {
			uc.rdy = uc.hup
		}
		lp.timers.clear(&lc.t) // the stall limit counts from the last progress
		lx.left -= int64(m)
		lx.written += int64(m)
		if lx.left == 0 {
			lc.finishUpstream()
			lc.record(false)
		}
		if !lc.writeClient(lp.rbuf[:m]) {
			return
		}
	}
	if lx.left == 0 && len(lx.pend) == 0 {
		lc.answered()
	}
}

// writeClient writes p to the client; what would block waits in the connection's buffer (false).
func (lc *lconn) writeClient(p []byte) bool {
	for len(p) > 0 {
		m, err := rawWrite(lc.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			lc.wrdy = false
			lc.lp.l.waited.Add(1)
			lc.queue(p)
			if d := lc.c.lx.x.ClientStall; d > 0 {
				lc.lp.timers.set(&lc.t, lc.lp.now.Add(d))
			}
			return false
		}
		if err != nil {
			lc.writeFailed(os.NewSyscallError("write", err))
			return false
		}
		p = p[m:]
	}
	return true
}

// flush writes what waits for the client, then goes on with the body.
func (lc *lconn) flush() {
	lx := &lc.c.lx
	for len(lx.pend) > 0 {
		m, err := rawWrite(lc.fd, lx.pend)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			lc.wrdy = false
			if d := lx.x.ClientStall; d > 0 {
				lc.lp.timers.set(&lc.t, lc.lp.now.Add(d))
			}
			return
		}
		if err != nil {
			lc.writeFailed(os.NewSyscallError("write", err))
			return
		}
		lx.pend = lx.pend[m:]
	}
	lc.lp.timers.clear(&lc.t)
	if lx.left > 0 {
		lc.pump()
		return
	}
	lc.answered()
}

// writeFailed ends an answer the client did not take (it left, or stalled past its limit).
func (lc *lconn) writeFailed(err error) {
	c := lc.c
	lx := &c.lx
	lx.app.Undelivered(str(c.head.Method), c.appPath(), lx.upstream, 499, true, &net.OpError{Op: "write", Net: lc.rwc.LocalAddr().Network(),
		Source: lc.rwc.LocalAddr(), Addr: lc.rwc.RemoteAddr(), Err: err})
	lx.pend = nil
	if lx.left > 0 {
		lc.endRelay(false)
		return
	}
	lc.finish(false)
}

// endRelay ends an answer cut before its end: the app's connection is closed; aborted says the app
// failed (the record says so).
func (lc *lconn) endRelay(aborted bool) {
	lx := &lc.c.lx
	if uc := lx.uc; uc != nil {
		lx.uc = nil
		uc.close()
	}
	if lx.left > 0 {
		lx.left = 0
		lc.record(aborted)
	}
	lc.finish(false)
}

// finishUpstream ends the app connection's part once the whole body was read.
func (lc *lconn) finishUpstream() {
	lx := &lc.c.lx
	uc := lx.uc
	lx.uc = nil
	switch {
	case uc == nil:
	case !lx.keep:
		uc.close() // (whatever came after the answer: the app's client closes such a connection quietly too)
	case lx.extra:
		uc.detach()
		lx.pool.up.DropUnsolicited(uc.rwc) // bytes after the answer's end: not the start of any later one
	default:
		lx.pool.put(uc)
	}
}

// record records the exchange (before the last bytes go out, as the handler chain records it) and ends
// its attempt: the answer is over.
func (lc *lconn) record(aborted bool) {
	c := lc.c
	lx := &c.lx
	rec := &c.rec
	rec.Bytes = lx.written
	rec.Aborted = aborted
	rec.Upstream = lx.upstream
	lc.endAttempt(nil, rec.Status, false)
	c.record(&c.head, lx.x, rec, lc.lp.now)
}

// endAttempt ends the exchange's attempt, if it has one not yet ended.
func (lc *lconn) endAttempt(err error, status int, gone bool) {
	lx := &lc.c.lx
	if at := lx.at; at != nil {
		lx.at = nil
		at.End(err, status, gone)
	}
}

// fail ends the exchange's attempt with err and hands the exchange to the app's answer to it (rest);
// an app of several instances may send it to another first, as its balancer would.
func (lc *lconn) fail(err error, cancelled bool) {
	lx := &lc.c.lx
	if ia, ok := lx.at.(InstanceAttempt); ok && !cancelled {
		lx.at = nil
		next, final := ia.Next(err, lx.onConn && len(lc.c.ex.Body) > 0)
		if next == nil {
			lc.rest(lx.app.Failed(final), false)
			return
		}
		// Sent again as the app's client sends an attempt: on a pooled connection of the next instance
		// if it has one, with its own retry of a stale one.
		lx.at, lx.retried, lx.an, lx.onConn = next, false, 0, false
		lc.freeAnswerBuf()
		lc.onInstance()
		lc.lp.timers.clear(&lc.t)
		lc.connect(false)
		return
	}
	lc.endAttempt(err, 0, cancelled)
	lc.rest(lx.app.Failed(err), cancelled)
}

// answered ends an exchange whose answer was written whole.
func (lc *lconn) answered() {
	lx := &lc.c.lx
	sh := lx.sh
	lc.finish(!sh.closeAfterReply && (!sh.hasCL || sh.isHEAD || !sh.bodyAllowed || lx.written == sh.clen))
}

// finish ends the exchange; reuse says the connection may serve another request.
func (lc *lconn) finish(reuse bool) {
	lp := lc.lp
	c := lc.c
	lx := &c.lx
	if lx.release != nil {
		lx.release()
	}
	lx.freeBufs()
	lc.endAttempt(nil, c.rec.Status, true) // (ended by record on every path that writes an answer)
	used := c.head.Size + int(c.head.ContentLength)
	*lx = loopExchange{}
	lp.timers.clear(&lc.t)
	if !reuse || lp.closing || lp.l.closing.Load() {
		lc.close()
		return
	}
	lc.served = true
	c.n = copy(c.buf, c.buf[used:c.n])
	lc.st = stIdle
	lc.idle() // (c goes back to the pool when nothing is pipelined)
	if lc.c != nil || lc.rdy {
		lc.readRequest()
	}
}

// idle starts the wait for the next request (the server's IdleTimeout, else ReadTimeout).
func (lc *lconn) idle() {
	srv := lc.lp.l.srv
	d := srv.IdleTimeout
	if d == 0 {
		d = srv.ReadTimeout
	}
	if d > 0 {
		lc.lp.timers.set(&lc.t, lc.lp.now.Add(d))
	}
	lc.noOut()
	if lc.c != nil {
		lc.c.releaseBufs()
		lc.dropState()
	}
}

// expire is the connection's deadline: what passed depends on where it is.
func (lc *lconn) expire() {
	switch lc.st {
	case stIdle:
		lc.close() // net/http closes an idle connection quietly
	case stHead:
		lc.c.readErr = os.ErrDeadlineExceeded
		lc.handOff() // the bytes and the timeout to net/http, which ends the connection as it does
	case stBody:
		// The body did not come within the client's stall limit: the handler chain serves the request
		// from what is buffered and answers as net/http's path does.
		lc.bodyGone()
	case stDial: // the loop's own connect did not end within the dial timeout
		if cn := lc.connecting; cn != nil {
			cn.cancel()
			lc.gen++
			lc.fail(dialError(cn.network, cn.addr, os.ErrDeadlineExceeded), false)
		}
	case stWait:
		lx := &lc.c.lx
		if lx.draining { // the body of an answer that passes stalls: the app's client reads on, as the relay
			lc.resume((*lx.ab)[:lx.an], false)
			return
		}
		uc := lx.uc
		lx.uc = nil
		uc.close()
		lc.fail(lx.pool.up.HeaderTimeout(), false)
	case stRelay:
		lx := &lc.c.lx
		if len(lx.pend) > 0 {
			lc.writeFailed(os.ErrDeadlineExceeded)
			return
		}
		c := lc.c
		lx.app.Undelivered(str(c.head.Method), c.appPath(), lx.upstream, c.rec.Status, false, lx.pool.up.Stalled())
		lc.endRelay(true)
	}
}

func (lc *lconn) owner() *lconn { return lc }

// abort closes the connection after a panic while serving it: its exchange's app connection or connect
// goes, its plan is released (the drain waits for no more), and the client's connection is closed.
func (lc *lconn) abort() {
	if lc.st == stOff {
		return
	}
	lc.gen++
	if c := lc.c; c != nil {
		lx := &c.lx
		if uc := lx.uc; uc != nil {
			lx.uc = nil
			uc.close()
		}
		if release := lx.release; release != nil {
			lx.release = nil
			release()
		}
		lx.freeBufs()
		lc.endAttempt(errAborted, 0, true)
		*lx = loopExchange{}
	}
	if cn := lc.connecting; cn != nil {
		cn.cancel()
	}
	lc.close()
}

// close closes the client connection.
func (lc *lconn) close() {
	lp := lc.lp
	lp.timers.drop(&lc.t)
	lp.forget(lc.fd)
	if lc.c != nil {
		lc.c.n = 0
		lc.dropState()
	}
	lc.st = stOff
	lp.conns--
	lp.l.onLoops.Add(-1)
	lc.rwc.Close()
}

// detach takes the connection off the loop, for a goroutine.
func (lc *lconn) detach() *conn {
	lp := lc.lp
	lp.timers.drop(&lc.t)
	lp.remove(lc.fd)
	lp.conns--
	lp.l.onLoops.Add(-1)
	lc.st = stOff
	c := lc.state()
	lc.c = nil
	c.state.Store(stateActive)
	return c
}

// handOff gives the connection, with the bytes read, to net/http.
func (lc *lconn) handOff() {
	c := lc.detach()
	go c.handOff()
}

// toGoroutine moves the connection to a goroutine of the lane, which serves the request in its buffer
// with first (nil: as the lane serves any request) and the connection's later requests.
func (lc *lconn) toGoroutine(first func(c *conn) (ok, reuse bool)) {
	c := lc.detach()
	l := lc.lp.l
	l.mu.Lock()
	l.conns[c] = struct{}{} // (while the lane closes too: the request in the buffer is served)
	l.mu.Unlock()
	if first == nil {
		first = func(c *conn) (bool, bool) { return c.serveRequest(&c.head) }
	}
	go c.serveAfter(func() (bool, bool) {
		if c.ctx == nil {
			c.startConn()
		}
		c.bodyDeadlineSet = false
		return first(c)
	})
}

// rest moves the connection to a goroutine where the route's handler chain finishes the exchange with
// rest in the app's place (cancelled: the client left, and the request's context says so).
func (lc *lconn) rest(rest http.Handler, cancelled bool) {
	lx := lc.c.lx
	lc.c.lx = loopExchange{}
	if lx.x.Abandoned != nil {
		lx.x.Abandoned()
	}
	lx.freeBufs()
	id := strings.Clone(lc.c.ex.RequestID)
	lc.toGoroutine(func(c *conn) (bool, bool) {
		defer lx.release()
		if cancelled {
			c.cancel()
		}
		ok, reuse := c.serveHandler(&c.head, lx.x.Finish(rest, lx.appAt.Add(-lx.passed)), nil, id, lx.start)
		return true, ok && reuse
	})
}

// resume hands an exchange whose answer the loop does not finish itself (not simple, a long head, a
// failed read after some bytes) to the app's handler, with the bytes read (cancelled: the client left).
func (lc *lconn) resume(read []byte, cancelled bool) {
	lx := &lc.c.lx
	uc := lx.uc
	lx.uc = nil
	uc.detach()
	c, err := goConn(uc.rwc)
	if err != nil {
		lc.fail(err, cancelled)
		return
	}
	at := lx.at
	lx.at = nil
	lc.rest(lx.app.Resume(c, read, uc.reused, at), cancelled)
}

// outBufs hold outgoing requests that do not fit in the connection's buffer, answer heads that come in
// pieces, and what a client did not take at once.
var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, loopBufSize); return &b }}

var errNoDescriptor = &net.OpError{Op: "dial", Err: os.ErrInvalid}

// errAborted is the end of an attempt whose connection was aborted (a panic while serving it).
var errAborted = errors.New("fastlane: exchange aborted")
