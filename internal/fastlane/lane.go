//go:build linux

package fastlane

import (
	"bufio"
	"context"
	"errors"
	"github.com/switchyard/switchyard/internal/connpeek"
	"github.com/switchyard/switchyard/reqinfo"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Supported says whether this build has the lane (Linux); elsewhere New passes every connection through.
const Supported = true

// bufSize is the lane's read buffer per connection: the whole head must fit (8 KiB at most, less when
// the server's MaxHeaderBytes is smaller), and pipelined requests wait in it.
const bufSize = 8 << 10

// Listener is the lane: it accepts the connections of the listener it wraps, serves what is its own and
// returns from Accept every connection it hands to net/http. Close closes the wrapped listener and the
// lane's idle connections; the lane's requests in flight finish with Connection: close.
type Listener struct {
	inner   net.Listener
	srv     *http.Server
	router  Router
	express ExpressRouter // the router's express plans (nil: none)
	lim     Limits
	park    parking

	handoffs chan net.Conn
	errc     chan error
	done     chan struct{}
	once     sync.Once
	closing  atomic.Bool

	mu    sync.Mutex
	conns map[*conn]struct{}

	loops []*loop // the event loops (none: every connection on a goroutine of its own)
	next  atomic.Uint32

	served, handedOff, expressed, looped, waited, returned atomic.Uint64
	onLoops                                                atomic.Int64 // client connections the loops hold
}

// New wraps ln; see Listener.
func New(ln net.Listener, opts Options) *Listener {
	l := &Listener{inner: ln, srv: opts.Server, handoffs: make(chan net.Conn), errc: make(chan error),
		done: make(chan struct{}), conns: map[*conn]struct{}{}}
	l.router, _ = opts.Server.Handler.(Router)
	l.express, _ = opts.Server.Handler.(ExpressRouter)
	l.lim = Limits{MaxHead: bufSize, MaxBody: opts.MaxBody}
	if m := opts.Server.MaxHeaderBytes; m > 0 && m < l.lim.MaxHead {
		l.lim.MaxHead = m
	}
	if l.lim.MaxBody <= 0 {
		l.lim.MaxBody = 64 << 10
	}
	l.park = parkingOf(opts.Parker)
	n := opts.Loops
	if n == 0 {
		n = runtime.GOMAXPROCS(0)
	}
	for range max(n, 0) {
		lp, err := newLoop(l)
		if err != nil {
			break // no epoll here: the goroutine lane serves everything
		}
		l.loops = append(l.loops, lp)
	}
	go l.acceptLoop()
	return l
}

// Served is the number of requests the lane served; HandedOff the number of connections it handed to
// net/http.
func (l *Listener) Served() uint64    { return l.served.Load() }
func (l *Listener) HandedOff() uint64 { return l.handedOff.Load() }

// Expressed is the number of requests the lane served on its express path (within Served).
func (l *Listener) Expressed() uint64 { return l.expressed.Load() }

// Looped is the number of express exchanges an event loop finished itself (within Expressed).
func (l *Listener) Looped() uint64 { return l.looped.Load() }

// OnLoops is the number of client connections the event loops hold now.
func (l *Listener) OnLoops() int64 { return l.onLoops.Load() }

// Returned is the number of idle connections a goroutine of the lane gave back to an event loop.
func (l *Listener) Returned() uint64 { return l.returned.Load() }

// Waited is the number of times an event loop's write to a client found no room and waited.
func (l *Listener) Waited() uint64 { return l.waited.Load() }

// Addr is the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.inner.Addr() }

// Accept returns the next connection handed to net/http.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handoffs:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close closes the wrapped listener and every lane connection waiting for its next request; those
// serving one close after their answer (which says Connection: close, as net/http's during a Shutdown).
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.once.Do(func() {
		l.closing.Store(true)
		close(l.done)
		err = l.inner.Close()
		l.mu.Lock()
		for c := range l.conns {
			if c.state.CompareAndSwap(stateIdle, stateClosed) {
				c.rwc.Close()
			}
		}
		l.mu.Unlock()
		for _, lp := range l.loops {
			lp.close()
		}
	})
	return err
}

func (l *Listener) acceptLoop() {
	for {
		rwc, err := l.inner.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if n := len(l.loops); n > 0 {
			lp := l.loops[int(l.next.Add(1))%n]
			if !lp.post(func() { lp.adopt(rwc) }) {
				rwc.Close()
			}
			continue
		}
		l.goServe(rwc)
	}
}

// goServe serves rwc on a goroutine of its own.
func (l *Listener) goServe(rwc net.Conn) {
	c := &conn{connState: connState{l: l, rwc: rwc}}
	c.state.Store(stateIdle)
	if !l.track(c) {
		rwc.Close()
		return
	}
	go c.serve()
}

// track counts c among the connections Close looks at; false when the lane is closing.
func (l *Listener) track(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing.Load() {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

func (l *Listener) logf(format string, args ...any) {
	if l.srv.ErrorLog != nil {
		l.srv.ErrorLog.Printf(format, args...)
	}
}

// Connection states, for Close: an idle connection (no request bytes read) may be closed under the lane.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

// conn is one connection the lane serves: its state, and scratch space that each use writes before
// it reads it, so that giving the state back clears only the state (a loop does it at every request; the
// scratch is kilobytes).
type conn struct {
	connState
	connScratch
}

// connState is a connection's state: cleared whenever a loop gives a request state back.
type connState struct {
	l     *Listener
	rwc   net.Conn
	state atomic.Int32

	buf []byte // read buffer: buf[:n] read and not yet consumed; nil while idle with nothing in it
	bp  *[]byte
	n   int
	big bool // a request of the connection did not fit in small: it reads into a pooled buffer

	readErr    error // the read error that ended the lane's reading of a head, for net/http
	ctx        context.Context
	cancel     context.CancelFunc
	remoteAddr string
	peer       string      // the client's IP (the express path's X-Forwarded-For)
	wdl        time.Time   // the write deadline the express path set last
	gone       func() bool // clientGone, made once
	// traceParent is the express request's traceparent field (nil: none).
	traceParent []byte
	// bodyDeadlineSet says setBodyDeadline ran for the request being served.
	bodyDeadlineSet bool
	// reqStart is when the express path began serving a request it then left to the handler chain.
	reqStart time.Time
	peek     *connpeek.Peeker
	// The request being served: its head, and the express path's exchange and record.
	head     Head
	ex       Exchange
	rec      Record
	names    []byte
	bufw     *bufio.Writer // net/http's 4 KiB connection writer
	chunkBuf *bufio.Writer // net/http's 2 KiB response buffer
	werr     error
	lx       loopExchange // the express exchange a loop carries

	// The background read, as net/http's connReader: it watches for the client's close while a handler
	// runs (cancelling the connection's context) and keeps the one byte it may read.
	bgMu    sync.Mutex
	bgCond  *sync.Cond
	inRead  bool
	aborted bool
	hasByte bool
	byteBuf [1]byte
}

// connScratch is a connection's scratch space: every use writes what it reads (the read buffer up to n,
// the field names up to the head's NFields, the request id, the head's numbers and date, as net/http's
// response has them); what the last connection left in it is never read.
type connScratch struct {
	small     [1 << 10]byte // the read buffer of a connection whose request fits (see takeBuf)
	idBuf     [24]byte
	keys      [MaxFields]string // the canonical names of head's fields (views into names)
	statusBuf [64]byte          // a whole status line (appendStatusLine)
	clenBuf   [20]byte
	chunkHead [16]byte
	dateBuf   [len(http.TimeFormat)]byte
}

// The buffers a connection holds while it has a request (read buffer, net/http's connection writer and
// response buffer); an idle connection with nothing pipelined gives them back.
var (
	bufPool   = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}
	writers   = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
	chunkBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufferBeforeChunkingSize) }}
)

// takeBuf gives c a read buffer (when it has none) holding the bytes of first: the connection's own small
// array (most requests fit; grow moves to a pooled buffer of bufSize when one does not).
func (c *conn) takeBuf(first []byte) {
	if c.buf != nil {
		return
	}
	if c.big { // its requests do not fit: reading them in one read is worth the buffer's wait
		c.bp = bufPool.Get().(*[]byte)
		c.buf = *c.bp
	} else {
		c.buf = c.small[:]
	}
	c.n = copy(c.buf, first)
}

// grow moves the bytes read to a pooled buffer of bufSize; false when c has one already (it is full).
func (c *conn) grow() bool {
	if c.bp != nil {
		return false
	}
	c.bp = bufPool.Get().(*[]byte)
	c.n = copy(*c.bp, c.buf[:c.n])
	c.buf = *c.bp
	c.big = true
	return true
}

// releaseBufs gives back the read buffer, when nothing is left in it, and the writers (flushed).
func (c *conn) releaseBufs() {
	if c.buf != nil && c.n == 0 {
		if c.bp != nil {
			bufPool.Put(c.bp)
		}
		c.buf, c.bp = nil, nil
	}
	if c.bufw != nil {
		c.bufw.Reset(nil)
		writers.Put(c.bufw)
		c.bufw = nil
	}
	if c.chunkBuf != nil {
		c.chunkBuf.Reset(nil)
		chunkBufs.Put(c.chunkBuf)
		c.chunkBuf = nil
	}
}

func (c *conn) serve() { c.serveAfter(nil) }

// serveAfter serves the connection on its goroutine. first, when not nil, serves the request in the
// buffer (a loop's, which moved the connection here): ok false hands the connection to net/http as it
// is, reuse says it may serve another request.
func (c *conn) serveAfter(first func() (ok, reuse bool)) {
	l, srv := c.l, c.l.srv
	if c.remoteAddr == "" {
		c.remoteAddr = c.rwc.RemoteAddr().String()
	}
	c.takeBuf(nil)
	handed := false
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		if !handed {
			c.rwc.Close()
		}
		c.n = 0
		c.releaseBufs()
	}()
	if d := srv.ReadHeaderTimeout; d > 0 && first == nil {
		c.rwc.SetReadDeadline(time.Now().Add(d))
	}
	for req := 0; ; req++ {
		var ok, reuse bool
		if req == 0 && first != nil {
			ok, reuse = first()
		} else {
			h := &c.head
			switch v := c.readHead(h, req > 0); v {
			case errRead:
				return // net/http closes quietly too: nothing read, or EOF, a timeout or a reset
			case parked:
				handed = true // to the parker, which owns the connection now
				return
			case NotMine:
				handed = true
				c.handOff()
				return
			}
			c.bodyDeadlineSet = false
			if c.ctx == nil {
				c.startConn()
			}
			ok, reuse = c.serveRequest(h)
		}
		if !ok {
			handed = true
			c.handOff()
			return
		}
		if !reuse {
			return
		}
	}
}

// setBodyDeadline gives the rest of the request, once its head is read, the deadline net/http gives it:
// none but the server's ReadTimeout (net/http's wholeReqDeadline; the gateway sets none, its body stall
// limit is middleware.ClientDeadlines). Set before anything reads on (the express path, which has the
// whole request in its buffer, reads nothing more before the next request's idle wait sets its own).
func (c *conn) setBodyDeadline() {
	if c.bodyDeadlineSet {
		return
	}
	c.bodyDeadlineSet = true
	if d := c.l.srv.ReadTimeout; d > 0 {
		c.rwc.SetReadDeadline(time.Now().Add(d))
	} else {
		c.rwc.SetReadDeadline(time.Time{})
	}
}

// errRead is readHead's verdict for a connection net/http would close quietly.
const errRead Verdict = -1

// readHead reads until buf holds a head Parse decides on. idle says a request was served before: the
// wait for its first byte is under the server's IdleTimeout, then ReadHeaderTimeout, as net/http's.
func (c *conn) readHead(h *Head, idle bool) Verdict {
	srv := c.l.srv
	if idle {
		if c.n < 4 {
			d := srv.IdleTimeout
			if d == 0 {
				d = srv.ReadTimeout
			}
			var idleEnd time.Time
			if d > 0 {
				idleEnd = time.Now().Add(d)
			}
			if v, done := c.idleWait(idleEnd); done { // parked, or ended before a byte came
				return v
			}
			if !c.fill(4) { // net/http's Peek(4): the idle wait lasts until four bytes are there
				return errRead
			}
		}
		// The rest of the head comes under ReadHeaderTimeout; when the whole head is already read, no
		// read is left for the deadline to bound.
		if v := Parse(c.buf[:c.n], h, c.l.lim); v != Incomplete {
			return v
		}
		if d := srv.ReadHeaderTimeout; d > 0 {
			c.rwc.SetReadDeadline(time.Now().Add(d))
		} else {
			c.rwc.SetReadDeadline(time.Time{})
		}
	}
	for {
		switch v := Parse(c.buf[:c.n], h, c.l.lim); v {
		case Mine, NotMine:
			return v
		}
		if c.n == len(c.buf) && !c.grow() {
			return NotMine
		}
		m, err := c.rwc.Read(c.buf[c.n:])
		c.n += m
		if err != nil {
			if c.n == 0 {
				return errRead
			}
			c.readErr = err // replayed to net/http after the bytes
			return NotMine
		}
		if c.state.Load() == stateIdle && !c.state.CompareAndSwap(stateIdle, stateActive) {
			return errRead // closed by Close meanwhile
		}
	}
}

// fill waits for at least min bytes in buf (the idle wait, as net/http's Peek); false when the
// connection ended first or Close took it while it was idle.
func (c *conn) fill(min int) bool {
	if c.buf == nil {
		c.takeBuf(nil)
	}
	for c.n < min {
		m, err := c.rwc.Read(c.buf[c.n:])
		c.n += m
		if err != nil && c.n < min {
			return false
		}
	}
	return c.state.Load() == stateActive || c.state.CompareAndSwap(stateIdle, stateActive)
}

// startConn builds the connection's context as net/http's server does.
func (c *conn) startConn() {
	srv := c.l.srv
	ctx := context.Background()
	if srv.BaseContext != nil {
		ctx = srv.BaseContext(c.l.inner)
	}
	ctx = context.WithValue(ctx, http.ServerContextKey, srv)
	if srv.ConnContext != nil {
		ctx = srv.ConnContext(ctx, c.rwc)
	}
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.rwc.LocalAddr())
	c.ctx, c.cancel = context.WithCancel(ctx)
	c.bgCond = sync.NewCond(&c.bgMu)
}

// serveRequest serves the head in buf when the router takes it; ok false means it did not (nothing was
// served: the connection goes to net/http as it is). reuse says the connection may serve another request.
func (c *conn) serveRequest(h *Head) (ok, reuse bool) {
	l := c.l
	if l.router == nil {
		return false, false
	}
	c.reqStart = time.Time{}
	if handled, reuse := c.serveExpress(h); handled {
		return true, reuse
	}
	return c.serveHandler(h, nil, nil, "", c.reqStart)
}

// serveHandler serves the head in buf through handler (nil: the one the router's LaneHandler gives, or
// none: ok false), with done called after. A non-empty id is the request's X-Request-Id (the one the app
// already got on the express path); a non-zero start is when the request's serving began (the express
// path's), which the chain's records count from.
func (c *conn) serveHandler(h *Head, handler http.Handler, done func(), id string, start time.Time) (ok, reuse bool) {
	l := c.l
	c.setBodyDeadline()
	inBuf := min(int64(c.n-h.Size), h.ContentLength)
	ex := &struct { // the request's body and response writer in one allocation
		b body
		w response
	}{b: body{c: c, buffered: c.buf[h.Size : h.Size+int(inBuf)], remain: h.ContentLength - inBuf}}
	b := &ex.b
	rctx, rcancel := context.WithCancel(c.ctx)
	defer rcancel()
	req := h.Request(rctx, c.buf, c.remoteAddr, b)
	if id != "" {
		req.Header["X-Request-Id"] = []string{id}
	}
	if !start.IsZero() {
		req, _ = reqinfo.AttachAt(req, start)
	}
	if handler == nil {
		handler, done = l.router.LaneHandler(req)
		if handler == nil {
			return false, false
		}
		l.served.Add(1)
	}
	c.bufw = writers.Get().(*bufio.Writer)
	c.bufw.Reset(errWriter{c})
	c.chunkBuf = chunkBufs.Get().(*bufio.Writer)
	if !b.sawEOF && b.remain == 0 && len(b.buffered) == 0 {
		b.sawEOF = true
	}
	w := &ex.w
	c.initResponse(w, req, b)
	if h.ContentLength == 0 || b.remain == 0 && len(b.buffered) == 0 {
		c.startBackgroundRead()
	} else {
		b.onEOF = c.startBackgroundRead
	}
	if !c.run(handler, w, req, done) {
		return true, false // the handler panicked: the connection is closed, as net/http's
	}
	rcancel()
	w.finish()
	c.abortPendingRead()
	b.Close()
	c.rwc.SetWriteDeadline(time.Time{})
	if !w.reusable() || l.closing.Load() {
		return true, false
	}
	// What the request took of the buffer goes; pipelined bytes (and the background read's byte) stay.
	used := h.Size + int(inBuf)
	c.n = copy(c.buf, c.buf[used:c.n])
	if c.hasByte {
		c.buf[c.n] = c.byteBuf[0]
		c.n++
		c.hasByte = false
	}
	c.releaseBufs() // the read buffer too when nothing is pipelined: an idle connection holds no buffer
	if c.n == 0 {
		c.state.Store(stateIdle)
		if l.closing.Load() && c.state.CompareAndSwap(stateIdle, stateClosed) {
			return true, false
		}
	}
	return true, true
}

// run calls the handler; false means it panicked (logged as net/http logs it, except
// http.ErrAbortHandler), after which the connection is flushed and closed as net/http does.
func (c *conn) run(h http.Handler, w *response, req *http.Request, done func()) (ok bool) {
	defer func() {
		if done != nil {
			done()
		}
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				const size = 64 << 10
				buf := make([]byte, size)
				buf = buf[:runtime.Stack(buf, false)]
				c.l.logf("http: panic serving %v: %v\n%s", c.remoteAddr, err, buf)
			}
			c.cancel()
			c.abortPendingRead()
			c.bufw.Flush()
			ok = false
		}
	}()
	h.ServeHTTP(w, req)
	return true
}

// handOff gives the connection to net/http with everything read so far (and the read error that ended
// the lane's reading, if any, after it).
func (c *conn) handOff() {
	l := c.l
	l.handedOff.Add(1)
	hc := &handedConn{Conn: c.rwc, err: c.readErr}
	if c.n > 0 {
		hc.buf = append([]byte(nil), c.buf[:c.n]...)
		hc.note, _ = c.rwc.(readNoter)
	}
	if c.cancel != nil {
		c.cancel()
	}
	select {
	case l.handoffs <- hc:
	case <-l.done:
		c.rwc.Close()
	}
}

// errWriter is net/http's checkConnErrorWriter: the first write error cancels the connection's context.
type errWriter struct{ c *conn }

func (w errWriter) Write(p []byte) (int, error) {
	n, err := w.c.rwc.Write(p)
	if err != nil && w.c.werr == nil {
		w.c.werr = err
		w.c.cancel()
	}
	return n, err
}

// aLongTimeAgo is a deadline that ends a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *conn) startBackgroundRead() {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if c.hasByte || c.inRead {
		return
	}
	c.inRead = true
	c.rwc.SetReadDeadline(time.Time{})
	go c.backgroundRead()
}

func (c *conn) backgroundRead() {
	n, err := c.rwc.Read(c.byteBuf[:])
	c.bgMu.Lock()
	if n == 1 {
		c.hasByte = true
	}
	var ne net.Error
	if errors.As(err, &ne) && c.aborted && ne.Timeout() {
		// the abort's own deadline
	} else if err != nil {
		c.cancel() // the client is gone: the request's context ends, and with it the upstream exchange
	}
	c.aborted = false
	c.inRead = false
	c.bgMu.Unlock()
	c.bgCond.Broadcast()
}

func (c *conn) abortPendingRead() {
	c.bgMu.Lock()
	defer c.bgMu.Unlock()
	if !c.inRead {
		return
	}
	c.aborted = true
	c.rwc.SetReadDeadline(aLongTimeAgo)
	for c.inRead {
		c.bgCond.Wait()
	}
	c.rwc.SetReadDeadline(time.Time{})
}

// body is a request body of known length: the bytes already in the lane's buffer, then the connection.
type body struct {
	c           *conn
	buffered    []byte
	remain      int64 // still on the connection
	sawEOF      bool
	closed      bool
	brokenEarly bool // closed before its end and the rest could not be read
	onEOF       func()
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.sawEOF {
		return 0, io.EOF
	}
	var n int
	var err error
	if len(b.buffered) > 0 {
		n = copy(p, b.buffered)
		b.buffered = b.buffered[n:]
	} else {
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err = b.c.rwc.Read(p)
		b.remain -= int64(n)
		if err != nil && b.c.cancel != nil {
			// As net/http's connection reader: a failed read means the client is gone, and the request's
			// context says so (a body cut short is the client's doing, 499, not the app's).
			b.c.cancel()
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	if len(b.buffered) == 0 && b.remain == 0 {
		b.sawEOF = true
		err = io.EOF
		if b.onEOF != nil {
			b.onEOF()
			b.onEOF = nil
		}
	}
	return n, err
}

// discard reads the rest of the body (net/http does before answering on a kept connection).
func (b *body) discard() error {
	if b.sawEOF {
		return nil
	}
	_, err := io.Copy(io.Discard, b)
	return err
}

// Close ends the body; the rest is read and dropped, as net/http's body does for a short remainder.
func (b *body) Close() error {
	if b.closed {
		return nil
	}
	if !b.sawEOF {
		if _, err := io.Copy(io.Discard, b); err != nil {
			b.brokenEarly = true
		}
	}
	b.closed = true
	return nil
}

// handedConn is a connection handed to net/http: its first reads return the bytes the lane read.
type handedConn struct {
	net.Conn
	buf  []byte
	err  error     // the error that ended the lane's reading, returned once the bytes are read
	note readNoter // the idle parker's Conn under it, told of the Read the bytes answer (see readNoter)
}

func (h *handedConn) Read(p []byte) (int, error) {
	if len(h.buf) > 0 {
		if h.note != nil {
			h.note.NoteRead(len(p))
			h.note = nil
		}
		n := copy(p, h.buf)
		h.buf = h.buf[n:]
		return n, nil
	}
	if h.err != nil {
		err := h.err
		h.err = nil
		return 0, err
	}
	return h.Conn.Read(p)
}

// CloseWrite keeps net/http's half-close after an error answer.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// ReadFrom keeps the zero-copy path (sendfile, splice) for net/http's file answers.
func (h *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := h.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{h.Conn}, r)
}

// NetConn returns the wrapped connection (headscan.ConnContext and the idle parker look through it).
func (h *handedConn) NetConn() net.Conn { return h.Conn }
