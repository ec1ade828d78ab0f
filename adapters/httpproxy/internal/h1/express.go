package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/switchyard/switchyard/internal/appconn"
)

// MaxAnswerFields is the most header fields an answer may have and still be simple.
const MaxAnswerFields = 48

// Field is one header field of a simple answer, as the app sent it (the name as spelled, the value without
// its surrounding blanks), pointing into the answer's head.
type Field struct{ Name, Value []byte }

// Answer is a simple answer the express round trip read: the final head (no 1xx before it), status 200 to
// 599, header fields that parseHead accepts with none of Transfer-Encoding, Trailer, Pragma, Upgrade, Te,
// Proxy-*, no Connection field other than "close" or "keep-alive", and a body that is either absent (HEAD,
// 204, 304) or of one declared Content-Length with a Content-Type (a body without one gets its type
// sniffed by net/http's server). Hop-by-hop Connection and Keep-Alive fields are left out of its fields.
//
// The head's bytes are the Transport's until Close; Read reads exactly the body; Close ends the answer
// (the connection is pooled only after a body read to its end, and when neither side closes).
type Answer struct {
	code   int
	minor  int
	fields []Field
	// length is the declared Content-Length (-1 when the answer has none); body says whether a body
	// follows the head (length bytes).
	length int64
	body   bool

	t     *Transport
	pc    *pconn
	stop  func() bool
	keep  bool
	left  int64
	done  bool
	err   error
	gone  func() bool // the client's departure, asked while the body's reads wait
	dl    time.Time   // the read deadline set last
	last  time.Time   // when the body last made progress (the stall limit counts from it)
	buf   *[]byte
	store [MaxAnswerFields]Field
}

// answers are the Answers of express exchanges, taken once an answer's head is there.
var answers = sync.Pool{New: func() any { return new(Answer) }}

// Status is the answer's status code.
func (a *Answer) Status() int { return a.code }

// NumFields is the number of fields; Field returns the i-th: the name as the app spelled it, the value
// without surrounding blanks.
func (a *Answer) NumFields() int                   { return len(a.fields) }
func (a *Answer) Field(i int) (name, value []byte) { return a.fields[i].Name, a.fields[i].Value }

// ContentLength is the declared Content-Length (-1: none); HasBody says whether a body follows the head.
func (a *Answer) ContentLength() int64 { return a.length }
func (a *Answer) HasBody() bool        { return a.body }

// Pending is an exchange whose answer is not simple (or failed to parse): its first head is read and the
// connection waits. Finish completes it as RoundTripOutgoing would have, from that head on.
type Pending struct {
	t    *Transport
	pc   *pconn
	stop func() bool
	head []byte
	bp   *[]byte
}

// Finish returns the answer (or the error) RoundTripOutgoing would have returned for req and o, reading
// on from the head already read (1xx answers go to o, as they would have). req gives the method and Close,
// as for RoundTripOutgoing; its context is the one the exchange watches no more (only its error is
// looked at).
func (p *Pending) Finish(req *http.Request, o Outgoing) (*http.Response, error) {
	if p.bp != nil {
		defer putBuf(p.bp)
	}
	return p.t.answer(req.Context(), req, o, p.pc, p.stop, p.head)
}

// Abandon closes a Pending exchange that will not be finished.
func (p *Pending) Abandon() {
	p.stop()
	p.pc.c.Close()
	if p.bp != nil {
		putBuf(p.bp)
	}
}

// Express sends b, a whole request (head and body, as RoundTripOutgoing writes it) and reads the answer's
// first head: into a when the answer is simple (see Answer), else into a Pending the caller finishes on
// the general path. Connections, the liveness peek, the retry of a replayable request on a stale reused
// connection, ResponseHeaderTimeout and the body's stall limit are RoundTripOutgoing's; errors are the
// ones it returns (a nil Pending and a nil a.t then). No context is watched: the client's departure does
// not interrupt an express exchange (ResponseHeaderTimeout and the stall limit bound it).
func (t *Transport) Express(b []byte, head bool, replay bool, gone func() bool) (*Answer, *Pending, error) {
	ctx := context.Background()
	pc, err := t.conn(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if pc, err = t.conn(ctx, true); err != nil {
				return nil, nil, err
			}
		}
		a, p, err := t.express(ctx, pc, b, head, gone)
		if err == nil {
			return a, p, nil
		}
		var nb *noBytesError
		if attempt == 0 && pc.reused && replay && (errors.As(err, &nb) || errors.Is(err, errStale408)) {
			continue
		}
		return nil, nil, err
	}
}

func (t *Transport) express(ctx context.Context, pc *pconn, b []byte, head bool, gone func() bool) (*Answer, *Pending, error) {
	stop := notWatched // no context to watch: the client's departure is gone's
	if gone != nil {
		if err := t.writeOnly(ctx, pc, stop, b); err != nil {
			return nil, nil, err
		}
		if err := t.watch(pc, gone); err != nil {
			return nil, nil, failed(ctx, pc, stop, err)
		}
	} else if err := t.write(ctx, pc, stop, b); err != nil {
		return nil, nil, err
	}
	bp := getBuf()
	raw, err := t.readHead(ctx, pc, stop, (*bp)[:0], t.maxHead(), false)
	*bp = raw
	if err != nil {
		putBuf(bp)
		return nil, nil, err
	}
	a := answers.Get().(*Answer)
	ok := simple(raw, head, a)
	if a.code == http.StatusRequestTimeout && pc.reused {
		answers.Put(a)
		putBuf(bp)
		return nil, nil, failed(ctx, pc, stop, errStale408)
	}
	if !ok {
		answers.Put(a)
		return nil, &Pending{t: t, pc: pc, stop: stop, head: raw, bp: bp}, nil
	}
	a.t, a.pc, a.stop, a.buf = t, pc, stop, bp
	a.left, a.done, a.err = 0, false, nil
	if a.body {
		a.left = a.length
	}
	// The body's reads set their own deadlines (Read); one read past the head's may still be pending.
	a.gone, a.dl = gone, time.Time{}
	if t.ReadTimeout > 0 && a.left > int64(pc.br.Buffered()) {
		a.last = time.Now() // the stall limit counts from here
	}
	if a.left > int64(pc.br.Buffered()) && pc.deadline && gone == nil && t.ReadTimeout <= 0 {
		appconn.SetReadDeadline(ctx, pc.c, time.Time{})
		pc.deadline = false
	}
	if a.left == 0 {
		a.finish(true, io.EOF)
	}
	return a, nil, nil
}

// Read reads the body; io.EOF at its end. A failure is the body's error as the response body would give it
// (io.ErrUnexpectedEOF, *StallError, ...), or context.Canceled when the client went away while the app
// was silent (asked every WatchEvery, as the head's wait asks).
func (a *Answer) Read(p []byte) (int, error) {
	if a.done {
		return 0, a.err
	}
	if int64(len(p)) > a.left {
		p = p[:a.left]
	}
	for {
		var now time.Time
		if a.pc.br.Buffered() == 0 && (a.gone != nil || a.t.ReadTimeout > 0) {
			// A read that may wait: within the stall limit, and no longer than WatchEvery at a time when
			// the client is watched (the deadline moves at most twice a WatchEvery, not at every read).
			now = time.Now()
			if a.dl.Sub(now) < WatchEvery/2 {
				a.dl = a.stallEnd()
				if a.gone != nil {
					if w := now.Add(WatchEvery); a.dl.IsZero() || w.Before(a.dl) {
						a.dl = w
					}
				}
				a.pc.c.SetReadDeadline(a.dl)
				a.pc.deadline = true
			}
		}
		n, err := a.pc.br.Read(p)
		a.left -= int64(n)
		if n > 0 && a.t.ReadTimeout > 0 {
			a.last = time.Now()
		}
		if a.left == 0 {
			a.finish(true, io.EOF)
			return n, io.EOF
		}
		if err == nil {
			return n, nil
		}
		if n == 0 && !now.IsZero() && errors.Is(err, os.ErrDeadlineExceeded) {
			switch end := a.stallEnd(); {
			case a.gone != nil && a.gone():
				err = context.Canceled
			case !end.IsZero() && !time.Now().Before(end):
				err = &StallError{Limit: a.t.ReadTimeout}
			default:
				a.dl = time.Time{}
				continue // the app is slow, the client still there: wait on
			}
		} else if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		a.finish(false, err)
		return n, a.err
	}
}

// stallEnd is when the body's stall limit passes (zero: no limit).
func (a *Answer) stallEnd() time.Time {
	if a.t.ReadTimeout <= 0 {
		return time.Time{}
	}
	return a.last.Add(a.t.ReadTimeout)
}

func (a *Answer) finish(clean bool, err error) {
	a.done, a.err = true, err
	if clean {
		a.t.release(a.pc, a.stop, a.keep)
	} else {
		a.stop()
		a.pc.c.Close()
	}
}

// Close ends the answer: before the body's end that closes the connection. The fields are invalid after.
func (a *Answer) Close() {
	if a.t == nil {
		return
	}
	if !a.done {
		a.finish(false, errBodyClosed)
	}
	putBuf(a.buf)
	a.t, a.pc, a.stop, a.buf, a.fields = nil, nil, nil, nil, nil
	answers.Put(a)
}

// simple parses raw, a response head, into a when the answer is simple (see Answer); head says the
// request was HEAD. a.code is set whenever the status line parses.
func simple(raw []byte, head bool, a *Answer) bool {
	a.code, a.fields, a.length, a.keep = 0, a.store[:0], -1, true
	line, rest := cutLine(raw)
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' {
		return false
	}
	a.minor = int(line[7] - '0')
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return false
		}
		code = code*10 + int(c-'0')
	}
	if len(line) > 12 && line[12] != ' ' {
		return false
	}
	a.code = code
	if code < 200 || code > 599 {
		return false
	}
	var haveType, close, keepAlive bool
	for {
		line, rest = cutLine(rest)
		if len(line) == 0 {
			break
		}
		colon := -1
		for i, c := range line {
			if c == ':' {
				colon = i
				break
			}
			if !tokenByte(c) {
				return false
			}
		}
		if colon <= 0 {
			return false
		}
		name, value := line[:colon], trimBlanks(line[colon+1:])
		for _, c := range value {
			if !valueByte(c) {
				return false
			}
		}
		switch fieldKind(name) {
		case kindLength:
			if a.length >= 0 {
				return false
			}
			n, ok := parseLength(string(value))
			if !ok {
				return false
			}
			a.length = n
		case kindType:
			haveType = true
		case kindConnection:
			switch {
			case equalFold(value, "close"):
				close = true
			case equalFold(value, "keep-alive"):
				keepAlive = true
			default:
				return false
			}
			continue // hop-by-hop: not relayed
		case kindKeepAlive:
			continue // hop-by-hop: not relayed
		case kindRefused:
			return false
		}
		if len(a.fields) == MaxAnswerFields {
			return false
		}
		a.fields = append(a.fields, Field{Name: name, Value: value})
	}
	if close || a.minor == 0 && !keepAlive {
		a.keep = false
	}
	a.body = !head && code != http.StatusNoContent && code != http.StatusNotModified
	if a.body && (a.length < 0 || a.length > 0 && !haveType) {
		return false
	}
	return true
}

// cutLine cuts the first line (without its CR LF or LF) off b.
func cutLine(b []byte) (line, rest []byte) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil
	}
	line, rest = b[:i], b[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

func trimBlanks(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold reports whether b is s in ASCII case-insensitive comparison (s lower or canonical case).
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c, d := b[i], s[i]
		if c|0x20 != d|0x20 || c|0x20 < 'a' && c != d {
			return false
		}
	}
	return true
}

// WatchEvery is how often an express exchange waiting for the answer's first byte asks whether the
// client is still there.
const WatchEvery = time.Second

// watch waits for the answer's first byte, asking gone every WatchEvery: a client that went away ends
// the exchange (context.Canceled, as a cancelled request's context ends RoundTripOutgoing's). Any other
// failure is left for the head's read, which finds it.
func (t *Transport) watch(pc *pconn, gone func() bool) error {
	var end time.Time
	now := time.Now()
	if t.ResponseHeaderTimeout > 0 {
		end = now.Add(t.ResponseHeaderTimeout)
	}
	shortened := false
	pc.deadline = true
	for first := true; ; first = false {
		if !first {
			now = time.Now()
		}
		dl := now.Add(WatchEvery)
		shortened = true
		if !end.IsZero() && !dl.Before(end) {
			dl, shortened = end, false
		}
		pc.c.SetReadDeadline(dl)
		_, err := pc.br.Peek(1)
		if err == nil {
			break
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			// The error the head's read would report: the peek took it (a reset read again reads EOF).
			return &noBytesError{err}
		}
		// A client that left before the app's time was up is a departure, not the app's timeout (net/http's
		// path sees the departure first: its context ends at once).
		if gone() {
			return context.Canceled
		}
		if !shortened {
			return nil // ResponseHeaderTimeout: the head's read reports it
		}
	}
	if shortened && !headBuffered(pc.br) {
		// The rest of the head may still be on its way: its wait ends where ResponseHeaderTimeout says.
		if end.IsZero() {
			pc.c.SetReadDeadline(time.Time{})
		} else {
			pc.c.SetReadDeadline(end)
		}
	}
	return nil
}

// headBuffered reports whether br's buffer holds a whole head (its empty line).
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, lfcrlf) || bytes.Contains(b, lflf)
}

var lfcrlf, lflf = []byte("\n\r\n"), []byte("\n\n")

// notWatched is the stop function of an exchange with no context watch.
func notWatched() bool { return true }

// writeOnly sends b on pc; the wait for the answer's head is watch's.
func (t *Transport) writeOnly(ctx context.Context, pc *pconn, stop func() bool, b []byte) error {
	if testHookBeforeWrite != nil {
		testHookBeforeWrite()
	}
	if _, err := pc.c.Write(b); err != nil {
		return failed(ctx, pc, stop, &noBytesError{err})
	}
	return nil
}

// The fields simple looks at.
const (
	kindOther = iota
	kindLength
	kindType
	kindConnection
	kindKeepAlive
	kindRefused // a field whose answer is not simple
)

// fieldKind sorts a field name by its length first, so that most names are compared with nothing.
func fieldKind(name []byte) int {
	switch len(name) {
	case 2:
		if equalFold(name, "Te") {
			return kindRefused
		}
	case 6:
		if equalFold(name, "Pragma") {
			return kindRefused
		}
	case 7:
		if equalFold(name, "Trailer") || equalFold(name, "Upgrade") {
			return kindRefused
		}
	case 10:
		switch {
		case equalFold(name, "Connection"):
			return kindConnection
		case equalFold(name, "Keep-Alive"):
			return kindKeepAlive
		}
	case 12:
		if equalFold(name, "Content-Type") {
			return kindType
		}
	case 14:
		if equalFold(name, "Content-Length") {
			return kindLength
		}
	case 16, 17, 18, 19:
		if equalFold(name, "Transfer-Encoding") || equalFold(name, "Proxy-Connection") ||
			equalFold(name, "Proxy-Authenticate") || equalFold(name, "Proxy-Authorization") {
			return kindRefused
		}
	}
	return kindOther
}
