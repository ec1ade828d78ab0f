package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/failure"
)

// Available returns nil when at least one instance may be tried now, else a *NoInstanceError saying why
// none may. It claims nothing: kinds that only consult active checks (Guarded) use it.
func (s *Set) Available() error {
	now := s.now().UnixNano()
	var nie NoInstanceError
	for _, in := range s.insts {
		switch in.state(now) {
		case available:
			return nil
		case reasonDown:
			nie.Down++
		case reasonEjected:
			nie.Ejected++
		case reasonOpen:
			nie.Open++
		}
	}
	nie.Total = len(s.insts)
	return &nie
}

// Guarded puts active health checks in front of an app of a kind that reaches one instance and does not
// balance (uwsgi, scgi, fastcgi): the checks run as for a balanced HTTP app (Set), and while the instance
// fails them every request is answered 503 without reaching it (fail closed), with one log line naming the
// app and the cause. It reports the instance's health (adapters.HealthReporter) and Close stops the checks
// and closes the app when it is an io.Closer.
type Guarded struct {
	next     http.Handler
	set      *Set
	app      string
	upstream string
	logger   *slog.Logger
}

// NewGuarded starts the checks of cfg (cfg.Active() must hold) on the instance addr (as reported by
// Health) of app with probe, and returns next guarded by them.
func NewGuarded(app, addr string, next http.Handler, cfg Config, probe Probe, logger *slog.Logger) (*Guarded, error) {
	if !cfg.Active() {
		return nil, errors.New("upstream: a guard needs active health checks")
	}
	if logger == nil {
		logger = slog.Default()
	}
	set, err := New(app, []string{addr}, cfg, probe, logger)
	if err != nil {
		return nil, err
	}
	return &Guarded{next: next, set: set, app: app, upstream: addr, logger: logger}, nil
}

// ServeHTTP sends r to the app unless its instance is failing its health check.
func (g *Guarded) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := g.set.Available(); err != nil {
		failure.Answer(w, r, g.logger, g.app, g.upstream, err) // a NoInstanceError: 503
		return
	}
	g.next.ServeHTTP(w, r)
}

// Health reports the instance (adapters.HealthReporter): its checks' verdict, with the counters the app
// itself reports (Unsolicited).
func (g *Guarded) Health() []adapters.InstanceHealth {
	h := g.set.Health()
	if hr, ok := g.next.(adapters.HealthReporter); ok {
		if own := hr.Health(); len(own) == 1 && len(h) == 1 {
			h[0].Unsolicited = own[0].Unsolicited
		}
	}
	return h
}

// Unwrap returns the guarded app.
func (g *Guarded) Unwrap() http.Handler { return g.next }

// Close stops the checks, then closes the app if it is an io.Closer.
func (g *Guarded) Close() error {
	_ = g.set.Close()
	if c, ok := g.next.(interface{ Close() error }); ok {
		return c.Close()
	}
	return nil
}

// ConnectProbe is a connect-only check: healthy when a connection to address opens (it is closed at once).
func ConnectProbe(network, address string) Probe {
	return func(ctx context.Context, _ *Instance) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// RequestProbe is a check through the app's own protocol: a GET of mount+path, with host as Host, served
// by h, the app's handler built to log into log (a failing check is logged once, by the Set, when the
// verdict changes; log supplies its cause). Healthy when the status is in want. The response body is
// discarded; the check's timeout bounds how long it may take. Calls must not overlap (one instance).
func RequestProbe(h http.Handler, log *ProbeLog, mount, path, host string, want StatusSet) Probe {
	return func(ctx context.Context, _ *Instance) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+mount+path, nil)
		if err != nil {
			return err
		}
		req.RequestURI = mount + path
		req.RemoteAddr = "127.0.0.1:0" // the gateway itself asks
		req.Header.Set("User-Agent", "switchyard-health-check")
		rec := &statusRecorder{header: http.Header{}}
		log.reset()
		h.ServeHTTP(rec, req)
		if ctx.Err() != nil {
			return fmt.Errorf("health check %s: %w", path, ctx.Err())
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if !want.Match(rec.status) {
			if cause := log.cause(); cause != "" {
				// The gateway's own error answer (the app could not be reached, or answered garbage):
				// the app answered nothing, the cause says what happened.
				return fmt.Errorf("health check %s failed: %s", path, cause)
			}
			return fmt.Errorf("health check %s answered %d", path, rec.status)
		}
		return nil
	}
}

// ProbeLog is the log of an app handler that serves only health checks: instead of writing lines it keeps
// the cause of the last one ("connecting: dial unix /run/app.sock: connect: no such file or directory"),
// for the check's error. The zero value is ready to use.
type ProbeLog struct {
	mu   sync.Mutex
	last string
}

// Logger returns the logger to build the probing handler with.
func (p *ProbeLog) Logger() *slog.Logger { return slog.New(probeLogHandler{p}) }

func (p *ProbeLog) reset() { p.mu.Lock(); p.last = ""; p.mu.Unlock() }

func (p *ProbeLog) cause() string { p.mu.Lock(); defer p.mu.Unlock(); return p.last }

type probeLogHandler struct{ p *ProbeLog }

func (h probeLogHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h probeLogHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h probeLogHandler) WithGroup(string) slog.Handler            { return h }
func (h probeLogHandler) Handle(_ context.Context, r slog.Record) error {
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "cause" || a.Key == "line" {
			msg = a.Value.String()
			return false
		}
		return true
	})
	h.p.mu.Lock()
	h.p.last = msg
	h.p.mu.Unlock()
	return nil
}

// statusRecorder is the ResponseWriter of a RequestProbe: it keeps the status and discards the body.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 && code >= 200 {
		r.status = code
	}
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(p), nil
}

// Flush lets streaming apps flush (the body is discarded anyway).
func (r *statusRecorder) Flush() {}
