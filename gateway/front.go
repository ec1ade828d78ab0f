package gateway

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/idlepark"
)

// Front is the gateway's client-facing side, built the one way the binary and every test harness use:
// the listener stack, innermost first - the head scan (ScanHeads, plain HTTP only), the connection limits
// (LimitListener), idle parking (ParkIdle, plain HTTP on Linux), the fast lane (GATEWAY_FAST_LANE, plain
// HTTP on Linux: internal/fastlane) - under the http.Server of Server, TLS on top when TLSConfig is given.
// The parker sits under the lane so that every parked connection, the lane's own and net/http's, comes
// back through the lane when it is readable again, and over the limits so that it is not counted twice.
// Build it with NewFront, then call Serve once.
type Front struct {
	// Server is the http.Server (Server's limits, ConnContext for the head scan, TLS when configured).
	Server *http.Server
	// Limits is the connection limiter; its Stats say how many connections are open.
	Limits *connlimit.Listener
	// Parker is the idle-connection parker, nil when parking is off.
	Parker *idlepark.Listener
	// Lane is the fast lane (GATEWAY_FAST_LANE), nil when it is off.
	Lane *fastlane.Listener

	ln       net.Listener // the outermost listener
	listener string       // the listener label of its series
	refused  *prometheus.CounterVec
}

// FrontOptions are the optional parts of a Front.
type FrontOptions struct {
	// TLSConfig, when set, serves HTTPS (and HTTP/2) on the listener; the head scan and parking are off.
	TLSConfig *tls.Config
	// OnReject is called with "total" or "per_client" for each connection the limits refuse (besides
	// the count Collector exports).
	OnReject func(reason string)
	// Listener is the value of the listener label on the front's connection series (Collector); ""
	// means ListenerHTTPS with TLSConfig, ListenerHTTP without.
	Listener string
}

// The listener label of the connection series: which of the gateway's listeners a connection came in on.
const (
	ListenerHTTP  = "http"  // plain HTTP over TCP (GATEWAY_ADDR without TLS, or GATEWAY_HTTP_ADDR)
	ListenerHTTPS = "https" // HTTP/1.1 and HTTP/2 over TLS over TCP
	ListenerHTTP3 = "http3" // HTTP/3 over QUIC over UDP
)

// NewFront builds the production listener stack on ln (a listener nothing else serves) for handler h.
// cfg.TLSCert set without opts.TLSConfig serves plain HTTP with the TLS-only settings (no scan, no
// parking): give the TLS configuration whenever certificates are configured.
func NewFront(cfg config.Config, h http.Handler, ln net.Listener, logger *slog.Logger, opts FrontOptions) *Front {
	s := FrontSettingsOf(cfg) // the stack reads nothing else of cfg: see FrontSettings
	if opts.TLSConfig != nil {
		s.TLS = true // the stack's TLS rules key on it
	}
	name := opts.Listener
	if name == "" {
		name = ListenerHTTP
		if opts.TLSConfig != nil {
			name = ListenerHTTPS
		}
	}
	refused := newRefused(name)
	onReject := func(reason string) {
		refused.WithLabelValues(reason).Inc()
		if opts.OnReject != nil {
			opts.OnReject(reason)
		}
	}
	ln = scanHeads(s, ln)
	lim := limitListener(s, ln, logger, onReject)
	srv := server(s, h, logger)
	srv.TLSConfig = opts.TLSConfig
	outer, parker := parkIdle(s, srv, lim, logger)
	lane := fastLane(s, srv, outer, parker)
	if lane != nil {
		outer = lane
	}
	return &Front{Server: srv, Limits: lim, Parker: parker, Lane: lane, ln: outer, listener: name, refused: refused}
}

// laneMaxBody is the longest request body the fast lane takes (a longer one goes to net/http, which
// streams it); the front door's GATEWAY_MAX_BODY_SIZE applies on both paths.
const laneMaxBody = 64 << 10

// fastLane wraps ln, the connection-limited plain-HTTP listener srv is about to serve, in the fast lane
// (internal/fastlane) when GATEWAY_FAST_LANE is on: the lane accepts the connections first, serves the
// requests it proves it handles exactly as net/http would (srv's handler says which: a Gateway's
// Handler or a Live) and hands every other connection to srv, with the bytes it read. It returns nil when
// the lane is off: the setting off, TLS, srv speaking unencrypted HTTP/2, a handler that is no
// fastlane.Router (neither a Gateway's Handler nor a Live: the lane would hand everything off), or a
// system other than Linux.
// The lane wraps idle parking (parker, nil when parking is off): the lane's idle connections are parked
// as net/http's are (fastlane.Parker), and every parked connection comes back through the lane.
func fastLane(s FrontSettings, srv *http.Server, ln net.Listener, parker *idlepark.Listener) *fastlane.Listener {
	if !s.FastLane || s.TLS || !fastlane.Supported {
		return nil
	}
	if srv.Protocols != nil && srv.Protocols.UnencryptedHTTP2() {
		return nil
	}
	if _, ok := srv.Handler.(fastlane.Router); !ok {
		return nil // a handler that cannot say what the lane may serve (the plain listener next to HTTPS)
	}
	opts := fastlane.Options{Server: srv, MaxBody: laneMaxBody, Loops: s.FastLaneLoops}
	if parker != nil {
		opts.Parker = parker
	}
	return fastlane.New(ln, opts)
}

// newRefused is switchyard_connections_refused_total{reason} of one listener. Both reasons are exported
// from the start, at 0: a series that appears only at the first refusal has no rate() until its second
// one, and an alert on it cannot tell "never refused" from "not exported".
func newRefused(listener string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_connections_refused_total",
		Help:        "Client connections refused at accept time by GATEWAY_MAX_CONNS (reason total) or GATEWAY_MAX_CONNS_PER_CLIENT (per_client), per listener (http, https, http3).",
		ConstLabels: prometheus.Labels{"listener": listener}}, []string{"reason"})
	c.WithLabelValues(connlimit.ReasonTotal)
	c.WithLabelValues(connlimit.ReasonPerClient)
	return c
}

// connCollector is the connection series of one listener: refused, open now, and parked now when
// parked is not nil. Every listener's collector has the same names and label names with its own listener
// value, so the collectors of all of a process's listeners register side by side in one registry.
func connCollector(listener string, refused *prometheus.CounterVec, open, parked func() float64) frontCollector {
	l := prometheus.Labels{"listener": listener}
	cs := frontCollector{refused, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_connections_open",
		Help:        "Client connections open now (admitted by the connection limits, not yet closed), per listener (http, https, http3).",
		ConstLabels: l}, open)}
	if parked != nil {
		cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_connections_parked",
			Help:        "Idle keep-alive client connections parked now (GATEWAY_IDLE_PARK_AFTER): held without a goroutine or buffers until their next request.",
			ConstLabels: l}, parked))
	}
	return cs
}

// Collector exports the front's numbers for a registry the caller owns, labelled with its listener
// (FrontOptions.Listener): connections refused by the limits (switchyard_connections_refused_total), open
// now (switchyard_connections_open) and parked now (switchyard_connections_parked, when parking is on).
func (f *Front) Collector() prometheus.Collector {
	var parked func() float64
	if p := f.Parker; p != nil {
		parked = func() float64 { return float64(p.Parked()) }
	}
	cs := connCollector(f.listener, f.refused, func() float64 { return float64(f.Limits.Stats().Open) }, parked)
	l := prometheus.Labels{"listener": f.listener}
	on := 0.0
	if f.Lane != nil {
		on = 1
	}
	cs = append(cs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_fast_lane_on",
		Help:        "1 when the fast lane (GATEWAY_FAST_LANE) serves this listener, else 0.",
		ConstLabels: l}, func() float64 { return on }))
	if ln := f.Lane; ln != nil {
		cs = append(cs,
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_fast_lane_requests_total",
				Help:        "Requests the fast lane served itself (the rest of its connections' requests went to net/http: switchyard_fast_lane_handoffs_total).",
				ConstLabels: l}, func() float64 { return float64(ln.Served()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_fast_lane_handoffs_total",
				Help:        "Client connections the fast lane handed to net/http (with the bytes it had read) at a request it does not take.",
				ConstLabels: l}, func() float64 { return float64(ln.HandedOff()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "switchyard_fast_lane_loop_connections",
				Help:        "Client connections the fast lane's event loops hold now (GATEWAY_FAST_LANE_LOOPS): idle ones and those whose express exchange a loop carries.",
				ConstLabels: l}, func() float64 { return float64(ln.OnLoops()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "switchyard_fast_lane_loop_exchanges_total",
				Help:        "Express exchanges the fast lane's event loops finished themselves (within switchyard_fast_lane_requests_total).",
				ConstLabels: l}, func() float64 { return float64(ln.Looped()) }))
	}
	return cs
}

// frontCollector is several collectors registered as one.
type frontCollector []prometheus.Collector

func (c frontCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c {
		x.Describe(ch)
	}
}

func (c frontCollector) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c {
		x.Collect(ch)
	}
}

// Listener is the outermost listener of the stack, for a server started by other means (httptest).
func (f *Front) Listener() net.Listener { return f.ln }

// Addr is the address the front listens on.
func (f *Front) Addr() net.Addr { return f.ln.Addr() }

// Serve serves until Shutdown or Close of f.Server; it returns http.ErrServerClosed then.
func (f *Front) Serve() error {
	if f.Server.TLSConfig != nil {
		return f.Server.ServeTLS(f.ln, "", "")
	}
	return f.Server.Serve(f.ln)
}
