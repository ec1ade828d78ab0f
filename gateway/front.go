package gateway

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"

	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/idlepark"
)

// Front is the gateway's client-facing side, built the one way the binary and every test harness use:
// the listener stack, innermost first - the head scan (ScanHeads, plain HTTP only), the connection limits
// (LimitListener), idle parking (ParkIdle, plain HTTP on Linux) - under the http.Server of Server, TLS on
// top when TLSConfig is given. Build it with NewFront, then call Serve once.
type Front struct {
	// Server is the http.Server (Server's limits, ConnContext for the head scan, TLS when configured).
	Server *http.Server
	// Limits is the connection limiter; its Stats say how many connections are open.
	Limits *connlimit.Listener
	// Parker is the idle-connection parker, nil when parking is off.
	Parker *idlepark.Listener

	ln net.Listener // the outermost listener
}

// FrontOptions are the optional parts of a Front.
type FrontOptions struct {
	// TLSConfig, when set, serves HTTPS (and HTTP/2) on the listener; the head scan and parking are off.
	TLSConfig *tls.Config
	// OnReject is called with "total" or "per_client" for each connection the limits refuse.
	OnReject func(reason string)
}

// NewFront builds the production listener stack on ln (a listener nothing else serves) for handler h.
// cfg.TLSCert set without opts.TLSConfig serves plain HTTP with the TLS-only settings (no scan, no
// parking): give the TLS configuration whenever certificates are configured.
func NewFront(cfg config.Config, h http.Handler, ln net.Listener, logger *slog.Logger, opts FrontOptions) *Front {
	if opts.TLSConfig != nil && cfg.TLSCert == "" {
		cfg.TLSCert = "(given)" // the stack's TLS rules key on it
	}
	ln = ScanHeads(cfg, ln)
	lim := LimitListener(cfg, ln, logger, opts.OnReject)
	srv := Server(cfg, h, logger)
	srv.TLSConfig = opts.TLSConfig
	outer, parker := ParkIdle(cfg, srv, lim, logger)
	return &Front{Server: srv, Limits: lim, Parker: parker, ln: outer}
}

// Addr is the address the front listens on.
func (f *Front) Addr() net.Addr { return f.ln.Addr() }

// Serve serves until Shutdown or Close of f.Server; it returns http.ErrServerClosed then.
func (f *Front) Serve() error {
	if f.Server.TLSConfig != nil {
		return f.Server.ServeTLS(f.ln, "", "")
	}
	return f.Server.Serve(f.ln)
}
