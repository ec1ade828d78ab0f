// Package gateway owns the assembly of a serving gateway from a validated configuration: it builds every
// application through the adapter registry, composes the primary and its delegates into a cascade, mounts
// the routes on the front router, and wraps the whole in the front-door middleware. It also owns the
// http.Server settings that carry the configured limits.
//
// A Gateway is self-contained: two built from two configurations in one process share nothing.
package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/reqinfo"
	"github.com/switchyard/switchyard/router"
)

// RouteInfo describes one resolved route, for `gateway check` and the admin API.
type RouteInfo struct {
	Pattern     string `json:"pattern"`
	App         string `json:"app"`
	Kind        string `json:"kind"`
	StripPrefix bool   `json:"strip_prefix"`
	Cascade     bool   `json:"cascade"`
	Source      string `json:"source"`
}

// Gateway is a built configuration.
type Gateway struct {
	// Handler is the front handler: request id, access log, sanitising, routing.
	Handler http.Handler
	// Routes is the resolved route table, most specific first as the router tries them; the primary and
	// delegates are listed last under the pattern "*".
	Routes []RouteInfo
	// Apps lists every built application by name (its APP string) with its handler, in build order: the
	// primary first, then delegates, then routes. The admin API reads health from handlers that implement
	// adapters.HealthReporter.
	Apps []BuiltApp
	// Admin holds extra admin endpoints contributed by components (path to handler, e.g.
	// "/api/migration"); the admin listener mounts them next to its own.
	Admin   map[string]http.Handler
	closers []io.Closer
}

// BuiltApp is one application of a Gateway.
type BuiltApp struct {
	Name    string
	Handler http.Handler
	// Role is "primary", "delegate" or "route".
	Role string
	// Pattern is the route pattern for routes, "*" for the primary and delegates.
	Pattern string
}

// Options are the parts of a build that do not come from the configuration.
type Options struct {
	Registry *adapters.Registry
	Logger   *slog.Logger
	// Observe, when not nil, wraps the router inside the access log (so it sees the request's reqinfo
	// record) and outside everything else: metrics and tracing middleware go here.
	Observe func(http.Handler) http.Handler
}

// Build turns cfg into a Gateway. Every error names where the offending value was configured. On error
// nothing stays open.
func Build(cfg config.Config, opts Options) (_ *Gateway, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	g := &Gateway{Admin: map[string]http.Handler{}}
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	var errs config.Errors

	build := func(source, raw, mount string, takeRouteOpts bool) (h http.Handler, kind adapters.Kind, strip, cascade bool, err error) {
		t, kind, err := opts.Registry.Parse(raw)
		if err != nil {
			return nil, kind, false, false, fmt.Errorf("%s: %v", source, err)
		}
		t.Mount = mount
		t.DefaultTimeout = time.Duration(cfg.UpstreamTimeout)
		if takeRouteOpts {
			if strip, err = t.Options.Bool("strip_prefix", false); err != nil {
				return nil, kind, false, false, fmt.Errorf("%s: app %q: %v", source, raw, err)
			}
			if cascade, err = t.Options.Bool("cascade", false); err != nil {
				return nil, kind, false, false, fmt.Errorf("%s: app %q: %v", source, raw, err)
			}
			if strip && kind.MountAware {
				return nil, kind, false, false, fmt.Errorf("%s: app %q: strip_prefix does not apply to %s apps: their mount prefix is always passed as SCRIPT_NAME", source, raw, t.URL.Scheme)
			}
		}
		h, err = opts.Registry.Build(t)
		if err != nil {
			return nil, kind, false, false, fmt.Errorf("%s: %v", source, err)
		}
		if c, ok := h.(io.Closer); ok {
			g.closers = append(g.closers, c)
		}
		return h, kind, strip, cascade, nil
	}

	var chain []delegate.App
	if cfg.Primary != "" {
		h, k, _, _, err := build("GATEWAY_PRIMARY", cfg.Primary, "", false)
		if err != nil {
			errs = append(errs, err)
		} else {
			chain = append(chain, delegate.App{Name: cfg.Primary, Handler: h})
			g.Apps = append(g.Apps, BuiltApp{Name: cfg.Primary, Handler: h, Role: "primary", Pattern: "*"})
			g.Routes = append(g.Routes, RouteInfo{Pattern: "*", App: cfg.Primary, Kind: k.Summary, Source: "GATEWAY_PRIMARY"})
		}
	}
	for i, d := range cfg.Delegates {
		src := fmt.Sprintf("GATEWAY_DELEGATES[%d]", i)
		h, k, _, _, err := build(src, d, "", false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		chain = append(chain, delegate.App{Name: d, Handler: h})
		g.Apps = append(g.Apps, BuiltApp{Name: d, Handler: h, Role: "delegate", Pattern: "*"})
		g.Routes = append(g.Routes, RouteInfo{Pattern: "*", App: d, Kind: k.Summary + " (delegate)", Source: src})
	}
	pass := delegate.StatusSet(cfg.PassStatus...)
	bodyLimit := int64(cfg.CascadeBodyLimit)
	if bodyLimit == 0 {
		bodyLimit = -1 // GATEWAY_CASCADE_BODY_LIMIT=0: never hold bodies
	}
	cascadeOf := func(apps []delegate.App) http.Handler {
		if len(apps) == 1 {
			return apps[0].Handler
		}
		return &delegate.Cascade{Apps: apps, Pass: pass, BodyLimit: bodyLimit, Logger: logger}
	}
	var fallback http.Handler
	if len(chain) > 0 {
		fallback = annotate("*", &delegate.Cascade{Apps: chain, Pass: pass, BodyLimit: bodyLimit, Logger: logger})
	}

	var routes []router.Route
	var routeInfos []RouteInfo
	for _, rs := range cfg.Routes {
		p, err := router.ParsePattern(rs.Pattern)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", rs.Source, err))
			continue
		}
		mount := p.Prefix
		if mount == "/" {
			mount = ""
		}
		h, k, strip, cascade, err := build(rs.Source, rs.App, mount, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		g.Apps = append(g.Apps, BuiltApp{Name: rs.App, Handler: h, Role: "route", Pattern: p.String()})
		if cascade {
			h = cascadeOf(append([]delegate.App{{Name: rs.App, Handler: h}}, chain...))
		}
		routes = append(routes, router.Route{Pattern: p, Handler: annotate(p.String(), h), StripPrefix: strip})
		routeInfos = append(routeInfos, RouteInfo{Pattern: p.String(), App: rs.App, Kind: k.Summary, StripPrefix: strip, Cascade: cascade, Source: rs.Source})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	sortRouteInfos(routeInfos)
	g.Routes = append(routeInfos, g.Routes...)

	front, err := router.New(router.Config{
		Routes:         routes,
		Fallback:       fallback,
		TrustedProxies: cfg.TrustedProxies,
		MaxBodySize:    int64(cfg.MaxBodySize),
	})
	if err != nil {
		return nil, err
	}
	var inner http.Handler = front
	if opts.Observe != nil {
		inner = opts.Observe(front)
	}
	g.Handler = middleware.RequestID()(middleware.AccessLog(logger)(inner))
	return g, nil
}

// annotate records in reqinfo which route claimed the request.
func annotate(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqinfo.From(r.Context()).SetRoute(pattern)
		h.ServeHTTP(w, r)
	})
}

// sortRouteInfos orders routes as the router tries them: exact hosts, wildcard hosts, no host; then
// longer prefixes first.
func sortRouteInfos(rs []RouteInfo) {
	rank := func(p string) (int, int) {
		host, path, _ := strings.Cut(p, "/")
		r := 2
		switch {
		case strings.HasPrefix(host, "*."):
			r = 1
		case host != "":
			r = 0
		}
		return r, -len(path)
	}
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0; j-- {
			a1, b1 := rank(rs[j-1].Pattern)
			a2, b2 := rank(rs[j].Pattern)
			if a1 < a2 || a1 == a2 && b1 <= b2 {
				break
			}
			rs[j-1], rs[j] = rs[j], rs[j-1]
		}
	}
}

// Close releases every application's pooled connections. Requests in flight are not interrupted.
func (g *Gateway) Close() error {
	var errs []error
	for _, c := range g.closers {
		errs = append(errs, c.Close())
	}
	g.closers = nil
	return errors.Join(errs...)
}

// Server returns an http.Server for h with the configured limits: header size (431 past it, answered by
// net/http), header read timeout and keep-alive idle timeout. Request bodies have no whole-request read
// deadline, so slow but steady uploads are not cut; the upstream timeout bounds the wait for an answer.
func Server(cfg config.Config, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              cfg.Addr,
		Handler:           h,
		ReadHeaderTimeout: time.Duration(cfg.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(cfg.IdleTimeout),
		MaxHeaderBytes:    int(cfg.MaxHeaderSize),
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}
