// Package headscan owns a listener wrapper that reads along the raw bytes of plain HTTP/1.x connections
// for what net/http's server hides from handlers: a Transfer-Encoding field in an HTTP/1.0 request head.
//
// Why: net/http deletes Transfer-Encoding from an HTTP/1.0 request and frames its body by Content-Length
// (none: an empty body), so a handler cannot tell that the field was sent. RFC 9112 section 6.1 calls
// such framing faulty: a server must treat it as an error and close the connection, or bytes a
// chunked-reading front end took for the body are read as a request of their own. nginx answers 400; the
// router's front door does too when Flagged says the connection carried such a head.
//
// The scan is a look-along, not a parser: it finds lines that end with " HTTP/1.0" (a request line) and,
// until the next empty line, a line that starts with "Transfer-Encoding:" in any case. A body that itself
// holds such text can flag its connection; only an HTTP/1.0 request on that connection can then be
// refused, which costs nothing to well-formed traffic. Reads skip from line feed to line feed
// (bytes.IndexByte), so a body costs a vectorised scan for '\n' and a few comparisons per line.
//
// Flagged heads are remembered by their request line, which the handler matches with its own request: a
// well-formed request pipelined next to a flagged one is not refused for it.
//
// TLS connections are not wrapped (the scan would see ciphertext, and a wrapper would hide the *tls.Conn
// from net/http): over TLS, HTTP/1.0 with Transfer-Encoding stays a request without a body, and the front
// door closes every HTTP/1.0 connection it finds unscanned (From returns nil) after the answer, so a
// chunked body behind such a request is never read as requests of its own.
//
// Scanning TLS connections too would need the plaintext, which only the *tls.Conn has; net/http serves
// HTTP/2 and sets Request.TLS only when handed that *tls.Conn itself, so a scanning wrapper would mean
// doing the handshake in the listener, serving HTTP/2 connections from a second server, and rebuilding
// Request.TLS from the context: not worth it for HTTP/1.0 keep-alive over TLS, which closing gives up.
package headscan

import (
	"bytes"
	"context"
	"github.com/switchyard/switchyard/internal/netconn"
	"io"
	"net"
	"sync"
)

// Listener wraps every accepted connection in a *Conn.
type Listener struct{ net.Listener }

// Accept implements net.Listener.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c}, nil
}

// Conn is a connection whose reads are scanned. Read must not be called concurrently (net/http reads a
// connection from one goroutine at a time).
type Conn struct {
	net.Conn
	s scanner

	mu      sync.Mutex
	flagged []string // request lines (without the version) of the HTTP/1.0 heads seen with Transfer-Encoding
}

// maxFlagged bounds the request lines kept: more flagged heads than that in one read are an attack on a
// connection that is refused at its first flagged request anyway.
const maxFlagged = 16

// maxLine is how much of a request line is kept and compared.
const maxLine = 256

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.feed(p[:n], c.flag)
	}
	return n, err
}

// ObserveRead scans p, bytes read from the connection under c without c's Read (the fast lane's event
// loop reads the socket itself), as Read would have.
func (c *Conn) ObserveRead(p []byte) { c.s.feed(p, c.flag) }

func (c *Conn) flag(requestLine string) {
	c.mu.Lock()
	if len(c.flagged) == maxFlagged {
		c.flagged = c.flagged[1:]
	}
	c.flagged = append(c.flagged, requestLine)
	c.mu.Unlock()
}

// CloseWrite keeps net/http's half-close after an error answer (so the client reads it before the close).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps sendfile and splice for responses written from files.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// Flagged reports whether the HTTP/1.0 request with that method and request-target (as sent) carried a
// Transfer-Encoding field in its head, and forgets the mark. Heads are told apart by their request line,
// so a pipelined request behind a flagged one, or ahead of it, is not refused for it.
func (c *Conn) Flagged(method, requestURI string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.flagged) == 0 {
		return false
	}
	line := method + " " + requestURI
	if len(line) > maxLine {
		line = line[:maxLine]
	}
	for i, f := range c.flagged {
		if f == line {
			c.flagged = append(c.flagged[:i], c.flagged[i+1:]...)
			return true
		}
	}
	return false
}

type ctxKey struct{}

// ConnContext is an http.Server ConnContext hook: it finds the *Conn under c (through NetConn wrappers)
// and keeps it in the connection's context for From.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := netconn.Find[*Conn](c); ok {
		return context.WithValue(ctx, ctxKey{}, sc)
	}
	return ctx
}

// From returns the scanned connection a request arrived on, or nil.
func From(ctx context.Context) *Conn {
	c, _ := ctx.Value(ctxKey{}).(*Conn)
	return c
}

// scanner follows lines across reads, keeping only what the checks need of the current line.
type scanner struct {
	head10  bool   // inside the head of an HTTP/1.0 request
	reqLine string // that request's line, without " HTTP/1.0" (at most maxLine bytes)
	marked  bool   // that head was reported already
	n       int    // bytes in the current line so far
	first   [maxLine]byte
	last    [len(http10) + 1]byte // the line's last bytes, right-aligned (room for a trailing CR)
}

const (
	teField = "transfer-encoding:"
	http10  = " HTTP/1.0"
)

// feed scans p and calls flag with the request line of each HTTP/1.0 head that carries Transfer-Encoding
// (once per head), as soon as the field's line is complete.
func (s *scanner) feed(p []byte, flag func(requestLine string)) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.add(p)
			return
		}
		s.add(p[:i])
		if s.endLine() {
			flag(s.reqLine)
		}
		p = p[i+1:]
	}
}

func (s *scanner) add(seg []byte) {
	if s.n < len(s.first) {
		copy(s.first[s.n:], seg)
	}
	s.n += len(seg)
	if len(seg) >= len(s.last) {
		copy(s.last[:], seg[len(seg)-len(s.last):])
		return
	}
	copy(s.last[:], s.last[len(seg):])
	copy(s.last[len(s.last)-len(seg):], seg)
}

func (s *scanner) endLine() bool {
	n, last := s.n, s.last[:]
	if n > 0 && last[len(last)-1] == '\r' {
		n--
		last = last[:len(last)-1]
	} else {
		last = last[1:]
	}
	s.n = 0
	found := false
	switch {
	case s.head10 && n == 0:
		s.head10 = false
	case s.head10:
		found = !s.marked && n >= len(teField) && asciiEqualFold(s.first[:], teField)
		s.marked = s.marked || found
	case n > len(http10) && string(last[len(last)-len(http10):]) == http10:
		s.head10, s.marked = true, false
		s.reqLine = string(s.first[:min(n-len(http10), maxLine)])
	}
	return found
}

func asciiEqualFold(b []byte, lower string) bool {
	for i := range len(lower) {
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
