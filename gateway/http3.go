package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/switchyard/switchyard/config"
)

// HTTP3 is the gateway's HTTP/3 side (quic-go), next to the HTTPS listener: the same handler, the same
// TLS configuration (certificates, reloads, ACME), and the limits that apply to QUIC - header size, idle
// timeout, handshake time (GATEWAY_READ_HEADER_TIMEOUT) and the connection limits (GATEWAY_MAX_CONNS,
// GATEWAY_MAX_CONNS_PER_CLIENT: a connection past them is closed right after its handshake with
// H3_EXCESSIVE_LOAD). Everything above the connection (front door, routes, middleware, body limits and
// stall timeouts, access log, metrics) is the handler's and holds as it does for HTTP/1 and HTTP/2.
// Build it with NewHTTP3, advertise it with AltSvc on the HTTPS listener, then call Serve once.
type HTTP3 struct {
	// Server is the quic-go HTTP/3 server.
	Server *http3.Server
	tr     *quic.Transport
	ln     *quicLimiter
}

// NewHTTP3 serves h over HTTP/3 on conn (a UDP socket nothing else reads), with tlsConf (the HTTPS
// listener's; it is cloned for h3).
func NewHTTP3(cfg config.Config, h http.Handler, conn net.PacketConn, tlsConf *tls.Config, logger *slog.Logger) (*HTTP3, error) {
	s := FrontSettingsOf(cfg) // the listener reads nothing else of cfg: see FrontSettings
	qconf := &quic.Config{
		HandshakeIdleTimeout: time.Duration(s.ReadHeaderTimeout),
		MaxIdleTimeout:       time.Duration(s.IdleTimeout),
		Allow0RTT:            false, // 0-RTT requests can be replayed by an attacker: never for a proxy in front of unknown apps
	}
	tr := &quic.Transport{Conn: conn}
	ln, err := tr.ListenEarly(http3.ConfigureTLSConfig(tlsConf), qconf)
	if err != nil {
		tr.Close()
		return nil, err
	}
	srv := &http3.Server{
		Handler:        dropConnectionFields(h),
		TLSConfig:      tlsConf,
		QUICConfig:     qconf,
		MaxHeaderBytes: int(s.MaxHeaderSize),
		IdleTimeout:    time.Duration(s.IdleTimeout),
		Logger:         logger,
	}
	lim := &quicLimiter{EarlyListener: ln, max: s.MaxConns, perClient: s.MaxConnsPerClient, logger: logger, byIP: map[netip.Addr]int{},
		refused: newRefused(ListenerHTTP3)}
	return &HTTP3{Server: srv, tr: tr, ln: lim}, nil
}

// Collector exports HTTP/3's connection numbers for a registry the caller owns, as Front.Collector does
// for the TCP listeners, with listener="http3": QUIC connections refused by the limits
// (switchyard_connections_refused_total) and open now (switchyard_connections_open: admitted, not yet
// closed by either side).
func (f *HTTP3) Collector() prometheus.Collector {
	return connCollector(ListenerHTTP3, f.ln.refused, func() float64 {
		f.ln.mu.Lock()
		defer f.ln.mu.Unlock()
		return float64(f.ln.open)
	}, nil)
}

// Addr is the UDP address HTTP/3 is served on.
func (f *HTTP3) Addr() net.Addr { return f.ln.Addr() }

// Serve serves until Shutdown or Close; it returns http.ErrServerClosed then.
func (f *HTTP3) Serve() error {
	err := f.Server.ServeListener(f.ln)
	if errors.Is(err, quic.ErrServerClosed) {
		err = http.ErrServerClosed
	}
	return err
}

// Shutdown stops accepting connections, sends GOAWAY on every open one and waits for their requests to
// finish until ctx is done (then closes them all); the UDP socket is closed at the end.
func (f *HTTP3) Shutdown(ctx context.Context) error {
	f.ln.Close() // no new connection (the server does not close a listener it was handed)
	err := f.Server.Shutdown(ctx)
	f.tr.Close()
	return err
}

// Close closes every connection at once.
func (f *HTTP3) Close() error {
	err := f.Server.Close()
	f.ln.Close()
	f.tr.Close()
	return err
}

// dropConnectionFields removes the connection-specific response fields HTTP/3 forbids (RFC 9114
// section 4.2: a client must treat a response carrying them as malformed). The front door sets
// "Connection: close" on the answers that end an HTTP/1 connection (a refused request), and an app's own
// fields pass through the handler: over HTTP/3 the answer must still reach the client.
func dropConnectionFields(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&h3Writer{ResponseWriter: w}, r)
	})
}

// h3Writer deletes the connection-specific fields before a head is written. Unwrap keeps
// http.ResponseController (deadlines, flushes) reaching the HTTP/3 writer.
type h3Writer struct {
	http.ResponseWriter
	done bool // the final head is written
}

var connectionFields = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

func (w *h3Writer) clean() {
	h := w.ResponseWriter.Header()
	for _, k := range connectionFields {
		delete(h, k)
	}
}

func (w *h3Writer) WriteHeader(code int) {
	if !w.done {
		w.clean()
		w.done = code >= 200
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *h3Writer) Write(b []byte) (int, error) {
	if !w.done {
		w.clean()
		w.done = true
	}
	return w.ResponseWriter.Write(b)
}

func (w *h3Writer) Flush() {
	if !w.done {
		w.clean()
		w.done = true
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *h3Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// AltSvc advertises HTTP/3 (Alt-Svc: h3=":PORT") on every response of next served over HTTP/1 or
// HTTP/2, so browsers switch to HTTP/3 for the next requests.
func (f *HTTP3) AltSvc(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor < 3 {
			f.Server.SetQUICHeaders(w.Header())
		}
		next.ServeHTTP(w, r)
	})
}

// quicLimiter is a QUIC listener that admits at most max connections at once (0: no limit) and at most
// perClient from one IP address (0: no limit); it closes a connection past them with
// H3_EXCESSIVE_LOAD, right after the handshake. A connection counts until its context ends (it closed, either side).
type quicLimiter struct {
	*quic.EarlyListener
	max, perClient int
	logger         *slog.Logger
	refused        *prometheus.CounterVec // by reason

	mu         sync.Mutex
	open       int
	byIP       map[netip.Addr]int
	lastLogged time.Time
}

// h3ExcessiveLoad is HTTP/3's error code for a peer refused because of load (RFC 9114, section 8.1).
const h3ExcessiveLoad = 0x0107

func (l *quicLimiter) Accept(ctx context.Context) (*quic.Conn, error) {
	for {
		c, err := l.EarlyListener.Accept(ctx)
		if err != nil {
			return nil, err
		}
		ip := netip.Addr{}
		if ua, ok := c.RemoteAddr().(*net.UDPAddr); ok {
			ip = ua.AddrPort().Addr().Unmap()
		}
		l.mu.Lock()
		reason := ""
		switch {
		case l.max > 0 && l.open >= l.max:
			reason = "total"
		case l.perClient > 0 && l.byIP[ip] >= l.perClient:
			reason = "per_client"
		}
		if reason != "" {
			l.refused.WithLabelValues(reason).Inc()
			logNow := time.Since(l.lastLogged) >= time.Second
			if logNow {
				l.lastLogged = time.Now()
			}
			l.mu.Unlock()
			if logNow {
				l.logger.Warn("HTTP/3 connection refused: connection limit reached", "reason", reason, "client", ip.String())
			}
			// An application error code only reaches the client once the handshake is complete (before it,
			// QUIC sends a bare APPLICATION_ERROR): close then, off the accept loop.
			go func() {
				select {
				case <-c.HandshakeComplete():
				case <-c.Context().Done():
				}
				c.CloseWithError(h3ExcessiveLoad, "connection limit")
			}()
			continue
		}
		l.open++
		l.byIP[ip]++
		l.mu.Unlock()
		go func() {
			<-c.Context().Done()
			l.mu.Lock()
			l.open--
			if l.byIP[ip]--; l.byIP[ip] == 0 {
				delete(l.byIP, ip)
			}
			l.mu.Unlock()
		}()
		return c, nil
	}
}
