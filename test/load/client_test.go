package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// hangBound is how long one exchange may take before the client calls the gateway hung. It only ends a
// stuck test with a message; no assertion depends on it.
const hangBound = 60 * time.Second

// probe is one request and the exact answer it must get.
type probe struct {
	kind       string
	method     string
	target     string // request-target (path and query)
	body       []byte
	wantStatus int
	wantBody   []byte
}

// client is a raw HTTP/1.1 keep-alive client on one connection: it writes a request, reads the response
// with http.ReadResponse, and reads the whole body before the next request.
type client struct {
	addr  string
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	dials int
	buf   []byte // the last body read, reused
}

func (c *client) dial() error {
	conn, err := net.DialTimeout("tcp", c.addr, hangBound)
	if err != nil {
		return err
	}
	c.conn, c.dials = conn, c.dials+1
	c.br, c.bw = bufio.NewReaderSize(conn, 16<<10), bufio.NewWriterSize(conn, 8<<10)
	return nil
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// send writes p's request on the connection (dialling first if there is none).
func (c *client) send(p *probe) error {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return fmt.Errorf("dial: %w", err)
		}
	}
	c.conn.SetDeadline(time.Now().Add(hangBound))
	fmt.Fprintf(c.bw, "%s %s HTTP/1.1\r\nHost: load.test\r\nUser-Agent: switchyard-load\r\n", p.method, p.target)
	if p.body != nil {
		fmt.Fprintf(c.bw, "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n", len(p.body))
	}
	c.bw.WriteString("\r\n")
	c.bw.Write(p.body)
	if err := c.bw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// receive reads the answer to p and checks it: status and the complete body. It reports whether the
// server announced it closes the connection.
func (c *client) receive(p *probe, deadline time.Duration) (closing bool, err error) {
	c.conn.SetDeadline(time.Now().Add(deadline))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return false, fmt.Errorf("reading the response head: %w", err)
	}
	body, err := c.readBody(resp.Body, len(p.wantBody))
	resp.Body.Close()
	if err != nil {
		return false, fmt.Errorf("%d, body cut after %d bytes: %w", resp.StatusCode, len(body), err)
	}
	if resp.StatusCode != p.wantStatus {
		return resp.Close, fmt.Errorf("status %d, want %d; body %.200q", resp.StatusCode, p.wantStatus, body)
	}
	if !bytes.Equal(body, p.wantBody) {
		i := 0
		for i < len(body) && i < len(p.wantBody) && body[i] == p.wantBody[i] {
			i++
		}
		return resp.Close, fmt.Errorf("body of %d bytes differs from the expected %d bytes at byte %d: got %.120q, want %.120q",
			len(body), len(p.wantBody), i, body[i:], p.wantBody[i:])
	}
	return resp.Close, nil
}

// readBody reads r to its end into the client's reused buffer (io.ReadAll, without a fresh allocation for
// every answer: the race detector makes allocation and copying the load generator's main cost).
func (c *client) readBody(r io.Reader, expect int) ([]byte, error) {
	if cap(c.buf) < expect+512 {
		c.buf = make([]byte, 0, expect+512)
	}
	b := c.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			c.buf = b[:0]
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return b, err
		}
	}
}

// do sends p and checks its answer; on any failure, or when the server closes, the connection is dropped
// and the next request dials again.
func (c *client) do(p *probe) error {
	if err := c.send(p); err != nil {
		c.close()
		return err
	}
	closing, err := c.receive(p, hangBound)
	if err != nil || closing {
		c.close()
	}
	return err
}

// expectEOF reads from an idle connection the server should close cleanly: no byte, then EOF (not a reset).
func (c *client) expectEOF(bound time.Duration) error {
	c.conn.SetReadDeadline(time.Now().Add(bound))
	n, err := c.br.Read(make([]byte, 1))
	switch {
	case n > 0:
		return fmt.Errorf("unexpected bytes from the server instead of a close")
	case errors.Is(err, io.EOF):
		return nil
	default:
		return fmt.Errorf("connection not closed cleanly: %v", err)
	}
}

// The mixed routes, as the gateway under test is configured (see mixedEnv).
var kinds = []string{"primary", "cascade", "api", "static", "status", "api-post", "cascade-post"}

const staticSize = 20000

// staticBody is the file served at /static/blob.txt.
func staticBody() []byte { return payload("file", "/blob.txt", staticSize) }

const deniedBody = "denied-by-the-load-test\n"

// mixedProbe is client id's request number k: it cycles through kinds, with paths unique to the client and
// the request, sizes from 100 bytes to 40 KB, and bodies sent with and without Content-Length.
func mixedProbe(id, k int) *probe {
	size := []int{100, 3000, 40000}[(id+k)%3]
	chunked := ""
	if (id+k)%2 == 0 {
		chunked = "&chunked=1"
	}
	path := fmt.Sprintf("/c%d/r%d", id, k)
	post := bytes.Repeat([]byte(fmt.Sprintf("client %d request %d;", id, k)), 20+(id*31+k)%200)
	q := "?size=" + strconv.Itoa(size) + chunked
	switch kind := kinds[k%len(kinds)]; kind {
	case "primary":
		return &probe{kind, "GET", "/p" + path + q, nil, 200, payload("primary", "/p"+path, size)}
	case "cascade": // the primary answers 404, the delegate the request
		return &probe{kind, "GET", "/d" + path + q, nil, 200, payload("delegate", "/d"+path, size)}
	case "api": // strip_prefix=true: the app sees the path without /api
		return &probe{kind, "GET", "/api" + path + q, nil, 200, payload("api", path, size)}
	case "static":
		return &probe{kind, "GET", "/static/blob.txt", nil, 200, staticBody()}
	case "status":
		return &probe{kind, "GET", "/denied" + path, nil, 403, []byte(deniedBody)}
	case "api-post":
		return &probe{kind, "POST", "/api/echo", post, 200, echoed("api", post)}
	default: // cascade-post: the body must reach the delegate too
		return &probe{kind, "POST", "/d/echo" + path, post, 200, echoed("delegate", post)}
	}
}

// tally counts requests per kind and keeps the first failures.
type tally struct {
	ok     [8]atomic.Int64
	failed atomic.Int64
	dials  atomic.Int64
	mu     sync.Mutex
	first  []string
}

func (t *tally) record(id int, p *probe, err error) {
	if err == nil {
		for i, k := range kinds {
			if k == p.kind {
				t.ok[i].Add(1)
			}
		}
		return
	}
	t.failed.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.first) < 20 {
		t.first = append(t.first, fmt.Sprintf("client %d %s %s (%s): %v", id, p.method, p.target, p.kind, err))
	}
}

func (t *tally) total() int64 {
	var n int64
	for i := range kinds {
		n += t.ok[i].Load()
	}
	return n + t.failed.Load()
}

func (t *tally) String() string {
	s := ""
	for i, k := range kinds {
		s += fmt.Sprintf(" %s=%d", k, t.ok[i].Load())
	}
	return fmt.Sprintf("%d requests (%d failed, %d connections):%s", t.total(), t.failed.Load(), t.dials.Load(), s)
}
