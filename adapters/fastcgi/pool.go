package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/internal/appconn"
	"github.com/switchyard/switchyard/internal/connpeek"
)

// idleTimeout is how long a pooled connection may wait unused before it is closed instead of reused.
// PHP-FPM binds a worker to each open connection, so idle connections must not linger.
const idleTimeout = 30 * time.Second

// conn is one connection to the application. It carries one request at a time (FastCGI multiplexing is
// not used: PHP-FPM does not support it); ids count up per connection so a stale record from an earlier
// request on the same connection is recognised as a protocol error instead of being read as this one's.
type conn struct {
	nc     net.Conn
	sr     *stallReader // br's source
	br     *bufio.Reader
	bw     *bufio.Writer
	nextID uint16
}

func (c *conn) requestID() uint16 {
	if c.nextID == 0 {
		c.nextID = 1
	}
	id := c.nextID
	c.nextID++
	return id
}

// pool keeps up to maxIdle idle keep-alive connections to one application (appconn.Pool: most recently
// used first, closed after idleTimeout unused) and dials new ones.
type pool struct {
	network, addr string
	maxIdle       int
	dialer        net.Dialer

	// onUnsolicited, when set, logs a connection dropped for unsolicited bytes; unsolicited counts them.
	onUnsolicited func()
	unsolicited   atomic.Uint64

	once  sync.Once
	conns appconn.Pool[*conn]
}

func (p *pool) idle() *appconn.Pool[*conn] {
	p.once.Do(func() {
		p.conns = appconn.Pool[*conn]{Max: p.maxIdle, IdleTimeout: idleTimeout, CloseConn: func(c *conn) { c.nc.Close() }}
	})
	return &p.conns
}

// get returns an idle connection that still looks alive, or dials a new one. reused says which.
func (p *pool) get(ctx context.Context) (c *conn, reused bool, err error) {
	if p.idle().Closed() {
		return nil, false, errors.New("fastcgi: handler is closed")
	}
	for {
		c, ok := p.idle().Get()
		if !ok {
			break
		}
		switch idleState(c) {
		case connpeek.Quiet:
			return c, true, nil
		case connpeek.Unsolicited:
			p.dropUnsolicited(c)
		default:
			c.nc.Close()
		}
	}
	nc, err := p.dialer.DialContext(ctx, p.network, p.addr)
	if err != nil {
		return nil, false, err
	}
	sr := &stallReader{nc: nc}
	return &conn{nc: nc, sr: sr, br: bufio.NewReaderSize(sr, 32<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, false, nil
}

// stallReader is the read side of a connection under its bufio.Reader. While a response body is read
// (between watch and unwatch) every read from the socket first renews the stall deadline (appconn.Stall),
// so an app that sends no byte for the limit fails the read (and stalled is set), while one that keeps
// trickling lives. It is used by the goroutine reading the response only.
type stallReader struct {
	nc      net.Conn
	ctx     context.Context // the request being answered: a renewed deadline must not undo its cancellation
	st      appconn.Stall
	stalled bool
}

// watch starts the stall limit for the response body of the request with context ctx (stall 0: none).
func (s *stallReader) watch(ctx context.Context, stall time.Duration) {
	s.ctx, s.st, s.stalled = ctx, appconn.Stall{Limit: stall}, false
}

// unwatch ends the stall limit; the connection's deadlines are left to its next user.
func (s *stallReader) unwatch() { s.ctx, s.st = nil, appconn.Stall{} }

func (s *stallReader) Read(p []byte) (int, error) {
	s.st.Renew(s.ctx, s.nc)
	n, err := s.nc.Read(p)
	if s.st.Stalled(s.ctx, err) {
		s.stalled = true
	}
	return n, err
}

// put returns a connection whose last request ended cleanly; it is closed when the pool is full or closed.
func (p *pool) put(c *conn) {
	_ = c.nc.SetDeadline(time.Time{})
	p.idle().Put(c)
}

// close closes the idle connections and makes every later put close its connection.
func (p *pool) close() error {
	p.idle().Close()
	return nil
}

// idleState says whether an idle connection can carry a request: Quiet when the application neither
// closed it nor sent bytes while no request was outstanding (records of an earlier request included, which
// would otherwise be read as the next one's answer). It looks at the socket without blocking.
func idleState(c *conn) connpeek.State {
	if c.br.Buffered() > 0 {
		return connpeek.Unsolicited
	}
	return connpeek.Idle(c.nc)
}

// dropUnsolicited closes a connection that holds bytes no request asked for, counts and logs it.
func (p *pool) dropUnsolicited(c *conn) {
	c.nc.Close()
	p.unsolicited.Add(1)
	if p.onUnsolicited != nil {
		p.onUnsolicited()
	}
}
