package faults

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// FastCGI record types the fake uses.
const (
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
)

// fcgiConn lets the HTTP-speaking fault scripts play a FastCGI responder: what they write (an HTTP/1.1
// response) goes out in FCGI_STDOUT records of the request being served, its status line turned into the
// CGI Status header. A script that writes no status line (garbage) sends its bytes as they are.
type fcgiConn struct {
	net.Conn
	mu    sync.Mutex
	id    uint16
	wrote bool
}

func (c *fcgiConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := p
	if !c.wrote && strings.HasPrefix(string(p), "HTTP/1.1 ") {
		out = append([]byte("Status: "), p[len("HTTP/1.1 "):]...)
	}
	c.wrote = true
	for len(out) > 0 {
		n := min(len(out), 65535)
		if err := writeFCGIRecord(c.Conn, fcgiStdout, c.id, out[:n]); err != nil {
			return 0, err
		}
		out = out[n:]
	}
	return len(p), nil
}

// NetConn returns the TCP connection (reset needs it).
func (c *fcgiConn) NetConn() net.Conn { return c.Conn }

func writeFCGIRecord(w io.Writer, typ uint8, id uint16, content []byte) error {
	var h [8]byte
	h[0], h[1] = 1, typ
	binary.BigEndian.PutUint16(h[2:], id)
	binary.BigEndian.PutUint16(h[4:], uint16(len(content)))
	_, err := w.Write(append(h[:], content...))
	return err
}

// readFCGI reads one request's records up to the empty FCGI_STDIN that ends its body, then points the
// connection's writer at its id.
func (f *fakeApp) readFCGI(br *bufio.Reader) (*http.Request, error) {
	conn, _ := f.fcgi.Load(br)
	var length int64
	for {
		var h [8]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil, err
		}
		if h[0] != 1 {
			return nil, fmt.Errorf("fastcgi: version %d", h[0])
		}
		typ, id := h[1], binary.BigEndian.Uint16(h[2:])
		n := int(binary.BigEndian.Uint16(h[4:])) + int(h[6])
		if _, err := io.CopyN(io.Discard, br, int64(n)); err != nil {
			return nil, err
		}
		if typ == fcgiBeginRequest && conn != nil {
			c := conn.(*fcgiConn)
			c.mu.Lock()
			c.id, c.wrote = id, false
			c.mu.Unlock()
		}
		if typ == fcgiStdin {
			if n == 0 {
				break
			}
			length += int64(binary.BigEndian.Uint16(h[4:]))
		}
	}
	f.arrived <- struct{}{}
	return &http.Request{ContentLength: length}, nil
}

// endFCGI ends the current request (FCGI_END_REQUEST, status 0) so a kept connection can carry another.
func endFCGI(c net.Conn) {
	if fc, ok := c.(*fcgiConn); ok {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		writeFCGIRecord(fc.Conn, fcgiEndRequest, fc.id, make([]byte, 8))
	}
}
