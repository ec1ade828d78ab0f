//go:build linux

package fastlane

import (
	"context"
	"errors"
	"github.com/switchyard/switchyard/internal/netconn"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/switchyard/switchyard/internal/connpeek"
)

// expressBufSize is the write buffer of an express answer: the head and the first body bytes go out in
// one write.
const expressBufSize = 16 << 10

// answerFields hold an answer's fields while its head is written.
var answerFields = sync.Pool{New: func() any { return new([64]answerField) }}

var expressBufs = sync.Pool{New: func() any { b := make([]byte, 0, expressBufSize); return &b }}

// str is b as a string sharing its bytes: only for a use that ends before b changes.
func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// serveExpress serves the head in buf on the express path when its route has a plan and the app takes
// it. handled false: nothing was done (the handler chain serves it). reuse says the connection may serve
// another request.
func (c *conn) serveExpress(h *Head) (handled, reuse bool) {
	x, release := c.expressPlan(h)
	if x == nil {
		return false, false
	}
	defer release()
	if x.Next != nil {
		return false, false // a cascade: only the event loops ask its apps in turn
	}
	// The request is served from here, as net/http's handler chain starts its clock once the head is read.
	start := time.Now()
	if int64(c.n-h.Size) < h.ContentLength && !c.readBody(h, x) {
		c.reqStart = start // the handler chain counts from here too
		return false, false
	}
	if !c.prepareExchange(h, x) {
		return false, false
	}
	id := c.ex.RequestID
	if x.Started != nil {
		x.Started()
	}
	appStart := time.Now()
	a, rest, ok := x.App.Express(&c.ex)
	if (!ok || rest != nil) && x.Abandoned != nil {
		x.Abandoned()
	}
	if !ok {
		return false, false
	}
	c.l.served.Add(1)
	used := h.Size + int(h.ContentLength)
	if rest != nil {
		// The rest of the exchange goes through the route's handler chain; the request carries the id
		// the app already got.
		if c.ctx == nil {
			c.startConn()
		}
		ok, reuse := c.serveHandler(h, x.Finish(rest, appStart), nil, strings.Clone(id), start)
		if !ok {
			return true, false
		}
		return true, reuse
	}
	c.l.expressed.Add(1)
	rec := &c.rec
	*rec = Record{Client: c.remoteAddr, RequestID: id, TraceParent: str(c.traceParent), Start: start, AppStart: appStart}
	reuse = c.writeAnswer(h, x, a, rec)
	a.Close()
	if !reuse || c.l.closing.Load() {
		return true, false
	}
	c.n = copy(c.buf, c.buf[used:c.n])
	c.releaseBufs()
	if c.n == 0 {
		c.state.Store(stateIdle)
		if c.l.closing.Load() && c.state.CompareAndSwap(stateIdle, stateClosed) {
			return true, false
		}
	}
	return true, true
}

// expressPlan is the express plan of h's route, with its release, when the express path may take h
// (nil: it may not; nothing to release).
func (c *conn) expressPlan(h *Head) (*Express, func()) {
	er := c.l.express
	if er == nil || h.Minor == 0 && h.ContentLength > 0 || h.Size+int(h.ContentLength) > bufSize {
		// (the front door closes after an HTTP/1.0 request with a body)
		return nil, nil
	}
	x, release := er.ExpressRoute(str(h.Method), str(h.Host), str(h.Path))
	if x == nil {
		return nil, nil
	}
	if x.MaxBody > 0 && h.ContentLength > x.MaxBody || x.Next != nil && h.ContentLength > x.Hold {
		release()
		return nil, nil // the front door's 413; a body the cascade does not hold (its first app is final)
	}
	return x, release
}

// prepareExchange checks the fields of h (whose body is in the buffer) and makes c.ex, the exchange the
// app gets; false: the express path does not take h.
func (c *conn) prepareExchange(h *Head, x *Express) bool {
	var clientID, traceParent []byte
	nid := 0
	// The fields' canonical names, once for the checks here and the app's head (Exchange.Keys).
	names := c.namesBuf()
	for i, f := range h.Fields[:h.NFields] {
		names, c.keys[i] = canonicalKey(names, f.Name)
	}
	for i, f := range h.Fields[:h.NFields] {
		switch {
		case equalFold(f.Name, "x-request-id"):
			clientID = f.Value
			nid++
		case equalFold(f.Name, "traceparent"):
			traceParent = f.Value
		case equalFold(f.Name, "pragma"), equalFold(f.Name, "te"), equalFold(f.Name, "keep-alive"),
			equalFold(f.Name, "close"):
			return false
		default:
			if x.Forwarding != nil && x.Forwarding(c.keys[i]) {
				return false
			}
		}
	}
	if nid > 1 {
		return false
	}
	id := ""
	if nid == 1 && x.ValidRequestID(str(clientID)) {
		id = str(clientID)
	} else {
		id = str(x.AppendRequestID(c.idBuf[:0]))
	}
	if c.peer == "" {
		c.peer, _, _ = net.SplitHostPort(c.remoteAddr)
	}
	if c.gone == nil {
		c.gone = c.clientGone
	}
	c.traceParent = traceParent
	c.ex = Exchange{Head: h, Keys: c.keys[:h.NFields], Body: c.buf[h.Size : h.Size+int(h.ContentLength)], RequestID: id, Peer: c.peer, Mount: x.Mount, Gone: c.gone,
		Scratch: c.buf[c.n:c.n:len(c.buf)]}
	return true
}

// appPath is the path of the exchange's request as its app got it (the relay's log lines name it).
func (c *conn) appPath() string {
	path, _ := c.ex.Mount.Path(str(c.ex.Head.Path))
	return path
}

// answerField is one field of the answer's head as net/http's server would write it.
type answerField struct {
	key   string // canonical
	value []byte
}

// answerHead is what the lane writes an answer's head from (Answer, AnswerHead).
type answerHead interface {
	Status() int
	NumFields() int
	Field(i int) (name, value []byte)
	ContentLength() int64
}

// answerShape is what an answer's head says of its body and the connection.
type answerShape struct {
	isHEAD, bodyAllowed, hasCL bool
	clen                       int64
	closeAfterReply            bool
}

// appendAnswerHead appends the head net/http's server writes for a simple answer a of h that the relay
// hands it (response.writeHeader's rules for this case), the request id rec.RequestID first; rec.Status
// is set. now is the time for a Date the app did not send.
func (c *conn) appendAnswerHead(b []byte, h *Head, a answerHead, rec *Record, now time.Time) ([]byte, answerShape) {
	code := a.Status()
	rec.Status = code
	sh := answerShape{isHEAD: str(h.Method) == "HEAD", clen: a.ContentLength()}
	is11 := h.Minor == 1
	keepAlives := !c.l.closing.Load()
	sh.bodyAllowed = code != http.StatusNoContent && code != http.StatusNotModified

	ap := answerFields.Get().(*[64]answerField)
	defer answerFields.Put(ap)
	fields := append(ap[:0], answerField{key: "X-Request-Id", value: unsafe.Slice(unsafe.StringData(rec.RequestID), len(rec.RequestID))})
	hasDate := false
	names := c.namesBuf() // the request's names are not needed any more
	for i := range a.NumFields() {
		name, value := a.Field(i)
		var key string
		names, key = canonicalKey(names, name)
		switch key {
		case "Date":
			hasDate = true
		case "Content-Length", "Transfer-Encoding":
			if !sh.bodyAllowed {
				continue
			}
		case "Content-Type":
			if code == http.StatusNotModified {
				continue
			}
		}
		fields = append(fields, answerField{key: key, value: value})
	}
	// Header.WriteSubset's order: keys sorted, each key's values in the order added (the request id first).
	for i := 1; i < len(fields); i++ {
		for j := i; j > 0 && fields[j].key < fields[j-1].key; j-- {
			fields[j], fields[j-1] = fields[j-1], fields[j]
		}
	}
	sh.hasCL = sh.clen >= 0
	wants10KeepAlive := h.Minor == 0 && h.KeepAlive10
	connection := ""
	if wants10KeepAlive && (sh.isHEAD || sh.hasCL || !sh.bodyAllowed) {
		connection = "keep-alive"
	} else if !is11 || h.Close {
		sh.closeAfterReply = true
	}
	if !keepAlives {
		sh.closeAfterReply = true
	}
	if sh.closeAfterReply && is11 {
		connection = "close"
	}

	b = appendStatusLine(b, is11, code)
	for _, f := range fields {
		b = append(b, f.key...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	if !hasDate {
		b = append(b, "Date: "...)
		b = appendDate(b, now)
		b = append(b, "\r\n"...)
	}
	if connection != "" {
		b = append(b, "Connection: "...)
		b = append(b, connection...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...), sh
}

// writeAnswer writes a's head and body as net/http's server writes what the relay hands it for a simple
// answer, and reports whether the connection may be reused.
func (c *conn) writeAnswer(h *Head, x *Express, a Answer, rec *Record) bool {
	bp := expressBufs.Get().(*[]byte)
	defer expressBufs.Put(bp)
	b, sh := c.appendAnswerHead((*bp)[:0], h, a, rec, time.Now()) // the body is read into its room: b never outgrows it
	code := rec.Status

	var written int64
	var readErr, writeErr error
	if a.HasBody() && !sh.isHEAD {
		for {
			if len(b) == cap(b) {
				if writeErr = c.writeOut(x, b, time.Time{}); writeErr != nil {
					break
				}
				b = b[:0]
			}
			n, err := a.Read(b[len(b):cap(b)])
			b = b[:len(b)+n]
			written += int64(n)
			if err == io.EOF {
				break
			}
			if err != nil {
				readErr = err
				break
			}
		}
	}
	rec.Bytes = written
	switch {
	case writeErr != nil:
		x.App.Undelivered(str(h.Method), c.appPath(), "", 499, true, writeErr)
	case errors.Is(readErr, context.Canceled): // the client went away while the app was silent
		x.App.Undelivered(str(h.Method), c.appPath(), "", 499, true, readErr)
		c.writeOut(x, b, time.Time{})
	case readErr != nil:
		x.App.Undelivered(str(h.Method), c.appPath(), "", code, false, readErr)
		rec.Aborted = true
		c.writeOut(x, b, time.Time{}) // the head and the bytes so far, as the relay's abort flushes them
	default:
		// As net/http's handler chain, the exchange is recorded before the last buffered bytes go out.
		c.record(h, x, rec, time.Now())
		writeErr = c.writeOut(x, b, rec.End)
		return !sh.closeAfterReply && writeErr == nil && (!sh.hasCL || sh.isHEAD || !sh.bodyAllowed || written == sh.clen)
	}
	c.record(h, x, rec, time.Now())
	return false
}

// record ends rec and hands it to the plan's Record.
func (c *conn) record(h *Head, x *Express, rec *Record, end time.Time) {
	rec.End = end
	rec.Method, rec.Path, rec.Host = str(h.Method), str(h.Path), str(h.Host)
	if x.Record != nil {
		x.Record(rec)
	}
}

// writeOut writes b to the client under the write stall limit; now is the time (zero: read the clock).
func (c *conn) writeOut(x *Express, b []byte, now time.Time) error {
	if len(b) == 0 {
		return nil
	}
	if d := x.ClientStall; d > 0 {
		if now.IsZero() {
			now = time.Now()
		}
		if c.wdl.Sub(now) < d {
			c.wdl = now.Add(d + d/1024)
			c.rwc.SetWriteDeadline(c.wdl)
		}
	}
	_, err := c.rwc.Write(b)
	if err != nil && c.werr == nil {
		c.werr = err
	}
	return err
}

// equalFold reports whether b equals lower, a lower-case ASCII name, ignoring ASCII case.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// clientGone reports whether the client closed the connection (a peek that reads nothing and does not
// wait; bytes pipelined behind the request are not a departure).
func (c *conn) clientGone() bool {
	if c.peek == nil {
		c.peek = connpeek.NewPeeker(netconn.Innermost(c.rwc))
	}
	if c.peek.Idle() != connpeek.Closed {
		return false
	}
	// The connection's context ends, as net/http's background read ends it when its client leaves: what
	// serves the rest of the request sees a request whose client went away.
	if c.cancel != nil {
		c.cancel()
	}
	return true
}

// namesBuf is the connection's buffer for canonical field names, emptied.
func (c *conn) namesBuf() []byte {
	if c.names == nil {
		c.names = make([]byte, 0, 1<<10)
	}
	return c.names[:0]
}

// canonicalKey appends name's canonical form to names and returns it as a string sharing names' bytes: a
// names buffer that is full is replaced, never grown, so the keys made before stay valid.
func canonicalKey(names, name []byte) ([]byte, string) {
	if len(names)+len(name) > cap(names) {
		names = make([]byte, 0, 2*cap(names)+len(name))
	}
	start := len(names)
	names = AppendCanonical(names, name)
	return names, str(names[start:])
}

// AppendCanonical appends the canonical form of name, a token (net/textproto's: the first letter and
// every letter after a hyphen upper case, the others lower case), to dst.
func AppendCanonical(dst, name []byte) []byte {
	upper := true
	for _, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
		upper = c == '-'
	}
	return dst
}

// readBody reads the rest of h's body into the buffer (moved to a pooled one when the small array is too
// small), within the client's stall limit for the whole of it; false when it did not come (a slow or
// departed client): the handler chain serves the request then, reading on from what is buffered, and
// answers as net/http's path does.
func (c *conn) readBody(h *Head, x *Express) bool {
	end := h.Size + int(h.ContentLength)
	if end > len(c.buf) {
		c.grow()
		if h2 := Parse(c.buf[:c.n], h, c.l.lim); h2 != Mine { // the head's views follow the bytes
			return false
		}
	}
	if x.ClientStall > 0 {
		c.rwc.SetReadDeadline(time.Now().Add(x.ClientStall))
	}
	for c.n < end {
		m, err := c.rwc.Read(c.buf[c.n:])
		c.n += m
		if err != nil && c.n < end {
			return false
		}
	}
	return true
}
