package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// idleTimeout is how long a pooled connection may wait unused before it is closed instead of reused.
// PHP-FPM binds a worker to each open connection, so idle connections must not linger.
const idleTimeout = 30 * time.Second

// conn is one connection to the application. It carries one request at a time (FastCGI multiplexing is
// not used: PHP-FPM does not support it); ids count up per connection so a stale record from an earlier
// request on the same connection is recognised as a protocol error instead of being read as this one's.
type conn struct {
	nc     net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	nextID uint16
	idleAt time.Time
}

func (c *conn) requestID() uint16 {
	if c.nextID == 0 {
		c.nextID = 1
	}
	id := c.nextID
	c.nextID++
	return id
}

// pool keeps up to maxIdle idle keep-alive connections to one application. It has no goroutine of its
// own: expired connections are dropped when the pool is next used, and Close closes what is idle.
type pool struct {
	network, addr string
	maxIdle       int
	dialer        net.Dialer

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

// get returns an idle connection that still looks alive, or dials a new one. reused says which.
func (p *pool) get(ctx context.Context) (c *conn, reused bool, err error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, errors.New("fastcgi: handler is closed")
		}
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			break
		}
		c = p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		if time.Since(c.idleAt) < idleTimeout && alive(c) {
			return c, true, nil
		}
		c.nc.Close()
	}
	nc, err := p.dialer.DialContext(ctx, p.network, p.addr)
	if err != nil {
		return nil, false, err
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 32<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, false, nil
}

// put returns a connection whose last request ended cleanly; it is closed when the pool is full or closed.
func (p *pool) put(c *conn) {
	_ = c.nc.SetDeadline(time.Time{})
	c.idleAt = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.maxIdle {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	// Drop connections that expired while parked, oldest first.
	for len(p.idle) > 0 && time.Since(p.idle[0].idleAt) >= idleTimeout {
		p.idle[0].nc.Close()
		p.idle = p.idle[1:]
	}
	p.idle = append(p.idle, c)
	p.mu.Unlock()
}

// close closes the idle connections and makes every later put close its connection.
func (p *pool) close() error {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.closed = true
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
	return nil
}

// alive reports whether an idle connection was neither closed by the application nor sent unexpected
// bytes while idle. It looks at the socket without blocking (see peekIdle); anything but "nothing to
// read yet" means the connection is unusable.
func alive(c *conn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	return peekIdle(c.nc)
}
