package gateway

import (
	"github.com/switchyard/switchyard/internal/fastlane"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
)

// generation is one built gateway and the count of requests running on it.
type generation struct {
	g       *Gateway
	seq     int
	n       atomic.Int64
	retired atomic.Bool
	once    sync.Once
	closed  chan struct{}
	logger  *slog.Logger
}

func (gen *generation) release() {
	if gen.n.Add(-1) == 0 && gen.retired.Load() {
		gen.close()
	}
}

// retire marks gen as replaced; it is closed once its last request is done (at once if none runs).
func (gen *generation) retire() {
	gen.retired.Store(true)
	if gen.n.Load() == 0 {
		gen.close()
	}
}

func (gen *generation) close() {
	gen.once.Do(func() {
		if err := gen.g.Close(); err != nil {
			gen.logger.Warn("closing a replaced configuration", "generation", gen.seq, "cause", err)
		}
		close(gen.closed)
	})
}

// Live is the handler a server runs for a gateway that is reloaded while it serves: each request is
// served on the Gateway current when it arrives, for its whole life. Swap installs a new Gateway
// atomically; the one it replaces is closed (idle pools released) only after its last request finishes,
// so a reload loses nothing in flight. Hijacked connections (WebSocket tunnels) belong to their handler
// until it returns, so a replaced Gateway stays open while one runs on it; the tunnel itself never depends
// on the Gateway's pools. Drain, after http.Server.Shutdown, waits for those tunnels too, which Shutdown
// does not track.
//
// Create it with NewLive and Swap in the first Gateway before serving. Swap must not be called
// concurrently (one reload at a time); everything else is safe for concurrent use.
type Live struct {
	cur    atomic.Pointer[generation]
	seq    int // guarded by the single caller of Swap (a Reloader, or startup)
	logger *slog.Logger

	// running counts handlers running on any generation (a replaced one included), for the drain.
	running   atomic.Int64
	draining  atomic.Bool
	drainOnce sync.Once
	drained   chan struct{} // closed by Drained's caller's wait once running is 0 while draining
}

// acquire returns the current generation with the request counted on it. A request counts on a
// generation only if the generation was still current after the count went up, so retire (which runs
// after the swap) either sees the count or the request moves on to the new generation.
func (l *Live) acquire() *generation {
	for {
		gen := l.cur.Load()
		gen.n.Add(1)
		if l.cur.Load() == gen {
			return gen
		}
		gen.release()
	}
}

func (l *Live) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.running.Add(1)
	defer l.done()
	gen := l.acquire()
	defer gen.release() // also when the handler aborts the response with a panic
	gen.g.Handler.ServeHTTP(w, r)
}

// LaneHandler implements fastlane.Router on the current gateway: when it lets the lane serve r, the
// request counts on that generation (and for the drain) until done is called, as one ServeHTTP serves.
func (l *Live) LaneHandler(r *http.Request) (http.Handler, func()) {
	l.running.Add(1)
	gen := l.acquire()
	if !gen.g.laneServes(r) {
		gen.release()
		l.done()
		return nil, nil
	}
	return gen.g.Handler, func() {
		gen.release()
		l.done()
	}
}

// PlainHTTP is the handler of the plain HTTP listener: each request on the current gateway's PlainHTTP,
// counted for the drain like the main listener's.
func (l *Live) PlainHTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.running.Add(1)
		defer l.done()
		gen := l.acquire()
		defer gen.release()
		h := gen.g.PlainHTTP
		if h == nil { // a reload cannot turn the listener on or off; this is only a safety net
			http.Error(w, "no plain HTTP service", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (l *Live) done() {
	if l.running.Add(-1) == 0 && l.draining.Load() {
		l.drainOnce.Do(func() { close(l.drained) })
	}
}

// NewLive returns a Live with no Gateway yet; logger receives the failures of closing replaced ones.
func NewLive(logger *slog.Logger) *Live {
	if logger == nil {
		logger = slog.Default()
	}
	return &Live{logger: logger}
}

// Running is the number of handlers running now, on any generation.
func (l *Live) Running() int64 { return l.running.Load() }

// Drain returns the number of handlers still running, on any generation, and a channel closed once
// none is. It is called after http.Server.Shutdown returned, when the only handlers left are those of
// hijacked connections (WebSocket tunnels), which Shutdown does not track, and no new one can start.
func (l *Live) Drain() (int64, <-chan struct{}) {
	l.drained = make(chan struct{})
	l.draining.Store(true)
	n := l.running.Load()
	if n == 0 {
		l.drainOnce.Do(func() { close(l.drained) })
	}
	return n, l.drained
}

// Gateway returns the current gateway.
func (l *Live) Gateway() *Gateway { return l.cur.Load().g }

// Swap installs g and retires the previous gateway. It returns a channel closed once the previous one is
// closed (already closed when there was none), and g's generation number.
func (l *Live) Swap(g *Gateway) (<-chan struct{}, int) {
	l.seq++
	gen := &generation{g: g, seq: l.seq, closed: make(chan struct{}), logger: l.logger}
	old := l.cur.Swap(gen)
	if old == nil {
		done := make(chan struct{})
		close(done)
		return done, gen.seq
	}
	old.retire()
	return old.closed, gen.seq
}

// Close retires the current gateway (at shutdown, after the server drained).
func (l *Live) Close() {
	if gen := l.cur.Load(); gen != nil {
		gen.retire()
	}
}

// ExpressRoute implements fastlane.ExpressRouter on the current gateway: a plan, when there is one,
// counts on that generation (and for the drain) until release is called.
func (l *Live) ExpressRoute(method, host, path string) (*fastlane.Express, func()) {
	l.running.Add(1)
	gen := l.acquire()
	x, release := gen.g.expressRoute(method, host, path)
	if x == nil {
		gen.release()
		l.done()
		return nil, nil
	}
	return x, func() {
		release()
		gen.release()
		l.done()
	}
}
