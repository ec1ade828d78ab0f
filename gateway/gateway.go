// Package gateway owns the assembly of a serving gateway from a configuration's plan (package plan, which
// Build parses first): it builds every application through the adapter registry, composes the primary
// and its delegates into a cascade, mounts the routes on the front router, and wraps the whole in the
// front-door middleware. It also owns the http.Server settings that carry the configured limits.
//
// A Gateway is self-contained: two built from two configurations in one process share nothing.
//
// The running gateway is here too, so a program embedding it gets what the gateway command runs: Live
// serves each request on the Gateway current when it arrived and drains at shutdown, Reloader re-reads
// and rebuilds the configuration and swaps it in without losing a request (on demand or on a file
// change), and NewFront is the listener stack (head scan, connection limits, idle parking) under the
// server. The examples show each.
package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/headscan"
	"github.com/switchyard/switchyard/internal/idlepark"
	"github.com/switchyard/switchyard/metrics"
	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/migration"
	"github.com/switchyard/switchyard/plan"
	"github.com/switchyard/switchyard/reqinfo"
	"github.com/switchyard/switchyard/router"
)

// RouteInfo describes one resolved route, for `gateway check` and the admin API (plan.RouteInfo).
type RouteInfo = plan.RouteInfo

// Gateway is a built configuration.
type Gateway struct {
	// Handler is the front handler: request id, access log, sanitising, routing.
	Handler http.Handler
	// PlainHTTP is the handler of the plain HTTP listener next to HTTPS (GATEWAY_HTTP_ADDR), nil when
	// there is none: the same stack as Handler, whose route table redirects every request to HTTPS (308,
	// path and query kept) except on the routes with https_redirect=false, which it serves.
	PlainHTTP http.Handler
	// Plan is the configuration as parsed (package plan), which the handlers were assembled from.
	Plan *plan.Plan
	// Routes is the resolved route table, most specific first as the router tries them; the primary and
	// delegates are listed last under the pattern "*": the plan's Table, with the Go middleware of
	// Options.RouteMiddleware counted in.
	Routes []RouteInfo
	// Apps lists every built application by name (its label, adapters.Target.Name) with its handler, in
	// build order: the
	// primary first, then delegates, then routes. The admin API reads health from handlers that implement
	// adapters.HealthReporter.
	Apps []BuiltApp
	// Admin holds extra admin endpoints contributed by components (path to handler, e.g.
	// "/api/migration"); the admin listener mounts them next to its own.
	Admin map[string]http.Handler
	// Collectors are Prometheus collectors contributed by components (the migration report's numbers), for
	// the admin listener to register in its private registry.
	Collectors []prometheus.Collector
	// Migration records the cascade ledger, shadow comparisons and per-app numbers behind the migration
	// report (also served at Admin["/api/migration"] and Admin["/migration"]).
	Migration *migration.Recorder
	// Middleware describes the global middleware (GATEWAY_MIDDLEWARE), outermost first.
	Middleware []string
	// NumbersReset and NumbersRemoved list, for a build with Options.Previous, the routes of the previous
	// configuration whose migration numbers did not carry over: those whose migration changed (they start
	// afresh) and those that are gone.
	NumbersReset, NumbersRemoved []string
	// Warnings are valid but probably unintended settings, one sentence each, for `gateway check` and the
	// start and reload logs (a route's mount-aware app on the primary's address with another SCRIPT_NAME).
	Warnings []string
	closers  []io.Closer
	// lane is the route table the fast lane looks requests up in (nil: the lane serves nothing of this
	// gateway, because global middleware stands in front of every route).
	lane *router.Table
	// express is what the express plans share (nil: no express path, see expressPlans).
	express *expressEnv
}

// BuiltApp is one application of a Gateway.
type BuiltApp struct {
	Name    string
	Handler http.Handler
	// Role is "primary", "delegate" or "route".
	Role string
	// Pattern is the route pattern for routes, "*" for the primary and delegates.
	Pattern string
	// Side is "new" or "old" for the two apps of a migration (a route with a stage and its old app; the
	// primary and the first delegate under GATEWAY_STAGE), empty for every other app: the role alone
	// does not say which of a migrating route's two apps is down.
	Side string
	// NotForReadiness is the app option ready=false, or a side of a migration whose outage its stage
	// covers or sends no client to (countsForReadiness): /readyz reports the app but never fails because
	// of it.
	NotForReadiness bool
}

// countsForReadiness says whether the side ("new" or "old") of a migration at stage s must be reachable for
// the gateway to be ready. The new app counts only once retired: before canary no client gets its answers
// (legacy sends it nothing; shadow sends copies whose answers no client sees), and at canary and primary
// a request it cannot receive is served by the old app (migration.Compose's fall back), so its outage must
// not take the gateway out of a load balancer while the old app serves. The old app counts until retired:
// a Django shut down after its routes were retired must not.
func countsForReadiness(s migration.Stage, side string) bool {
	switch side {
	case "new":
		return s == migration.StageRetired
	case "old":
		return s != migration.StageRetired
	}
	return true
}

// Options are the parts of a build that do not come from the configuration.
type Options struct {
	Registry *adapters.Registry
	Logger   *slog.Logger
	// Observe, when not nil, wraps the router inside the access log (so it sees the request's reqinfo
	// record) and outside everything else: metrics and tracing middleware go here.
	Observe func(http.Handler) http.Handler
	// ObserveMetrics is the metrics Observe counts requests with, when Observe does nothing else (no
	// tracing): the fast lane's express path, which serves without the handler chain, counts what it
	// serves with it. With Observe set and ObserveMetrics nil, the express path is off.
	ObserveMetrics *metrics.Metrics
	// RouteMiddleware adds Go middleware to routes, by route pattern in canonical form ("/api/",
	// "admin.example.com/"): it wraps the route's app inside the configured middleware, first outermost.
	// A pattern no route has is an error. Build them with the middleware package's constructors
	// (middleware.Compress, middleware.BasicAuth, ...) or any func(http.Handler) http.Handler.
	RouteMiddleware map[string][]func(http.Handler) http.Handler
	// RouteGuards puts a guard between a route and its one app, by route pattern as RouteMiddleware (a
	// pattern no route has is an error): what lets a request reach the app or answers it instead (the
	// run apps' 503 while no instance serves). Unlike other route middleware, a guard leaves the route
	// to the fast lane's express path, which asks its Admit first.
	RouteGuards map[string]RouteGuard
	// Previous is the gateway this build replaces (on a reload), or nil. The migration numbers of every
	// route whose migration is unchanged (same pattern, same apps as configured, same stage settings: see
	// migration.RecorderOptions.Previous) carry over: counters, latency histograms, ledger rows, shadow
	// results and the negative cache. Gateway.NumbersReset names the routes that start afresh.
	Previous *Gateway
}

// RouteGuard is a guard between a route and its app (Options.RouteGuards).
type RouteGuard struct {
	// Middleware is the guard on the handler chain. The app counts as tried (the access log's app, the
	// metrics' label) once the guard passes a request on to it.
	Middleware func(http.Handler) http.Handler
	// Admit reports, without waiting, whether Middleware would pass a request straight on to the app and
	// do nothing else around it than what release undoes once the request is over; the fast lane serves
	// a request only when it does, any other through Middleware (nil: never).
	Admit func() (release func(), ok bool)
}

// Build turns cfg into a Gateway: it parses cfg into a plan (package plan), then assembles the handlers
// from it. Every error names where the offending value was configured; the problems the plan finds and
// those found building what did parse (an app kind's own options, middleware parameters) are reported
// together. On error nothing stays open.
func Build(cfg config.Config, opts Options) (_ *Gateway, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	p, perr := plan.Parse(cfg, opts.Registry)
	var errs config.Errors
	if perr != nil {
		errs = append(errs, perr.(config.Errors)...)
	}
	var prevRec *migration.Recorder
	if opts.Previous != nil {
		prevRec = opts.Previous.Migration
	}
	rec := migration.NewRecorder(migration.RecorderOptions{Previous: prevRec})
	g := &Gateway{Admin: map[string]http.Handler{
		"/api/migration": rec.JSONHandler(),
		"/migration":     rec.PageHandler(),
	}, Collectors: []prometheus.Collector{rec.Collector()}, Migration: rec, Plan: p}
	g.Warnings = append(g.Warnings, p.Warnings...)
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	// build builds a planned app; the error names where the option it is about was configured.
	build := func(a plan.App) (http.Handler, error) {
		h, err := opts.Registry.Build(a.Target)
		if err != nil {
			return nil, a.Locate(err)
		}
		if c, ok := h.(io.Closer); ok {
			g.closers = append(g.closers, c)
		}
		return timed(h), nil
	}
	roles := map[plan.Role]string{plan.RolePrimary: "primary", plan.RoleDelegate: "delegate", plan.RoleRoute: "route", plan.RoleOld: "route"}

	var chain []delegate.App
	var chainIDs []string // identities of the chain's apps, for the migration numbers' keys
	for _, a := range p.Chain {
		h, err := build(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		chain = append(chain, delegate.App{Name: a.Name, Handler: h, PassHeader: a.PassHeader})
		chainIDs = append(chainIDs, a.ID)
		g.Apps = append(g.Apps, BuiltApp{Name: a.Name, Handler: h, Role: roles[a.Role], Pattern: "*", NotForReadiness: a.Unready})
	}
	pass := delegate.StatusSet(cfg.PassStatus...)
	bodyLimit := int64(cfg.CascadeBodyLimit)
	if bodyLimit == 0 {
		bodyLimit = -1 // GATEWAY_CASCADE_BODY_LIMIT=0: never hold bodies
	}
	// chainOf always builds a Cascade, which records the app it tries in reqinfo even for one app (the
	// access log, metrics and the migration ledger read it).
	chainOf := func(apps []delegate.App) http.Handler {
		return &delegate.Cascade{Apps: apps, Pass: pass, BodyLimit: bodyLimit, Logger: logger}
	}
	// chainKey identifies the fall-through chain (the primary, the delegates and the pass statuses) in
	// the migration numbers' keys: what answers a request it reaches.
	chainKey := fmt.Sprintf("chain %s pass=%v", strings.Join(chainIDs, " > "), cfg.PassStatus)
	compose := func(pattern, key string, s migration.Spec, newApp delegate.App, old []delegate.App) http.Handler {
		h, c := rec.Compose(migration.Composition{Pattern: pattern, Key: key, Spec: s, New: newApp, Old: old,
			Cascade: chainOf, ShadowBodyLimit: bodyLimit, Logger: logger})
		if c != nil {
			g.closers = append([]io.Closer{c}, g.closers...) // stop shadow copies before the apps' pools
		}
		return h
	}
	var fallback http.Handler
	switch {
	case len(chain) == 0:
	case p.Stage.Stage != migration.StageNone && len(chain) == len(p.Chain):
		fallback = annotate("*", compose("*", chainKey, p.Stage, chain[0], chain[1:]))
		g.Apps[0].Side, g.Apps[1].Side = "new", "old"
		for i := range 2 {
			g.Apps[i].NotForReadiness = g.Apps[i].NotForReadiness || !countsForReadiness(p.Stage.Stage, g.Apps[i].Side)
		}
	default:
		rec.AddRoute(migration.RouteMeta{Pattern: "*", Key: chainKey})
		fallback = routeHandler("*", chainOf(chain), chain)
	}

	var routes []router.Route
	var plainHTTP []bool // by routes' index: https_redirect=false
	var expressable []expressCandidate
	goMiddleware := map[string]int{}
	for _, r := range p.Routes {
		pat := r.Pattern.String()
		a := r.App
		h, err := build(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		strip := a.Strip
		newIdx := len(g.Apps)
		g.Apps = append(g.Apps, BuiltApp{Name: a.Name, Handler: h, Role: roles[a.Role], Pattern: pat, NotForReadiness: a.Unready})
		built := h
		var mount fastlane.Mount // how the route tells its app the prefix, for its express plan
		if a.ScriptNameHeader {
			h = router.ScriptNameHeader(r.Pattern.Prefix)(h)
			mount = fastlane.Mount{Prefix: strings.TrimSuffix(r.Pattern.Prefix, "/"), Field: router.ScriptNameField}
		}
		if strip && (r.Stage.Stage != migration.StageNone || r.Cascade) {
			// Other apps answer on this route (the old app, the fall-through chain): they get the client's
			// path, as with no route at all, so only the route's own app is stripped. Route middleware then
			// sees the client's path too.
			h = router.StripPrefix(r.Pattern.Prefix)(h)
			strip = false
		}
		guard, guarded := opts.RouteGuards[pat]
		if guarded && (r.Stage.Stage != migration.StageNone || r.Cascade) {
			errs = append(errs, fmt.Errorf("gateway.Options.RouteGuards: route %q has other apps than its own: a guard stands before a route's only app", pat))
			continue
		}
		newApp := delegate.App{Name: a.Name, Handler: h, PassHeader: a.PassHeader}
		var only []delegate.App // the route's apps when h is nothing but a Cascade of them
		key := "app " + a.ID
		if r.Cascade {
			key += "\nthen " + chainKey
		}
		switch {
		case r.Stage.Stage != migration.StageNone:
			var old []delegate.App
			if o := r.Old; o != nil {
				oh, err := build(*o)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if o.Strip {
					oh = router.StripPrefix(r.Pattern.Prefix)(oh)
				}
				if o.ScriptNameHeader {
					oh = router.ScriptNameHeader(r.Pattern.Prefix)(oh)
				}
				g.Apps[newIdx].Side = "new"
				g.Apps[newIdx].NotForReadiness = a.Unready || !countsForReadiness(r.Stage.Stage, "new")
				g.Apps = append(g.Apps, BuiltApp{Name: o.Name, Handler: oh, Role: roles[o.Role], Pattern: pat, Side: "old", NotForReadiness: o.Unready || !countsForReadiness(r.Stage.Stage, "old")})
				old = append(old, delegate.App{Name: o.Name, Handler: oh, PassHeader: o.PassHeader})
				key += "\nold " + o.ID
			}
			if r.Cascade {
				old = append(old, chain...)
			}
			h = compose(pat, key, r.Stage, newApp, old)
		case r.Cascade:
			only = append([]delegate.App{newApp}, chain...)
			h = chainOf(only)
			rec.AddRoute(migration.RouteMeta{Pattern: pat, Key: key})
		default:
			h = chainOf([]delegate.App{newApp})
			only = []delegate.App{newApp}
			rec.AddRoute(migration.RouteMeta{Pattern: pat, Key: key})
		}
		// Route middleware wraps the app as the router hands it over: after prefix stripping, so rewrite and
		// redirect rules see the path the app sees, and inside the route's reqinfo annotation.
		extra := opts.RouteMiddleware[pat]
		if len(extra) > 0 {
			h = middleware.Chain(extra...)(h)
			goMiddleware[pat] = len(extra)
		}
		if guarded {
			h = guard.Middleware(h) // outside the route's Go middleware, inside its configured middleware
			goMiddleware[pat]++
		}
		mw, _, err := middleware.Build(r.Middleware, middleware.BuildEnv{TrustedProxies: cfg.TrustedProxies, Logger: logger, RoutePrefix: r.Mount()})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %s", r.MiddlewareSource, strings.ReplaceAll(err.Error(), "\n", "; ")))
			continue
		}
		h = mw(h)
		if len(r.Middleware) > 0 || len(extra) > 0 {
			only = nil // the middleware stands between the route's annotation and its app
		}
		rh := routeHandler(pat, h, only)
		if c, ok := rh.(*claim); ok && guarded {
			// The guard alone stands between the route and its app: the route stays a claim (with the
			// guard's Admit for its express plan), the app recorded as tried once the guard lets a
			// request through, as the cascade of one app records it.
			c.admit, c.inner = guard.Admit, c.h
			if c.admit == nil {
				c.admit = neverAdmit
			}
			c.h = guard.Middleware(triedApp{name: c.app, h: c.h})
		}
		routes = append(routes, router.Route{Pattern: r.Pattern, Handler: rh, StripPrefix: strip, EncodedSlash: r.EncodedSlash})
		if only != nil {
			if strip {
				mount = fastlane.Mount{Prefix: strings.TrimSuffix(r.Pattern.Prefix, "/"), Field: router.ForwardedPrefixField, Strip: true}
			}
			expressable = append(expressable, expressCandidate{h: rh, app: built, mount: mount})
		}
		plainHTTP = append(plainHTTP, r.PlainHTTP)
	}
	for pat := range opts.RouteMiddleware {
		if !hasRoute(p.Routes, pat) {
			errs = append(errs, fmt.Errorf("gateway.Options.RouteMiddleware: no route has pattern %q", pat))
		}
	}
	for pat := range opts.RouteGuards {
		if !hasRoute(p.Routes, pat) {
			errs = append(errs, fmt.Errorf("gateway.Options.RouteGuards: no route has pattern %q", pat))
		}
	}
	globalMW, globalDesc, err := middleware.Build(p.Middleware, middleware.BuildEnv{TrustedProxies: cfg.TrustedProxies, Logger: logger})
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %s", p.MiddlewareSource, strings.ReplaceAll(err.Error(), "\n", "; ")))
	}
	g.Middleware = globalDesc
	for i, w := range g.Warnings {
		g.Warnings[i] = cfg.AsConfigured(w)
	}
	if len(errs) > 0 {
		for i, e := range errs {
			if msg := cfg.AsConfigured(e.Error()); msg != e.Error() {
				errs[i] = errors.New(msg) // the app URLs as configured, not as the run apps' addresses filled them in
			}
		}
		return nil, errs
	}
	g.NumbersReset, g.NumbersRemoved = rec.Carried()
	g.Routes = p.Table()
	for i, r := range g.Routes {
		if n := goMiddleware[r.Pattern]; n > 0 {
			g.Routes[i].Middleware = append(g.Routes[i].Middleware, fmt.Sprintf("%d Go middleware", n))
		}
	}

	// The front layers around the table: onion says which, in order.
	table, err := router.NewTable(routes, fallback)
	if err != nil {
		return nil, err
	}
	encodedSlash := false
	for _, r := range routes {
		encodedSlash = encodedSlash || r.EncodedSlash
	}
	outer := func(h http.Handler) http.Handler {
		return onion(h, onionLayers{
			sanitize: router.Sanitize(router.SanitizeConfig{TrustedProxies: cfg.TrustedProxies, MaxBodySize: int64(cfg.MaxBodySize), EncodedSlash: encodedSlash}),
			global:   globalMW, ledger: rec.Middleware, observe: opts.Observe,
			bodyTimeout: time.Duration(cfg.BodyTimeout), logger: logger,
		})
	}
	g.Handler = laneFront{outer(table), g}
	if len(globalDesc) == 0 {
		g.lane = table
		if opts.Observe == nil || opts.ObserveMetrics != nil {
			g.express = &expressEnv{outer: outer, rec: rec, metrics: opts.ObserveMetrics, logger: logger,
				bodyTimeout: time.Duration(cfg.BodyTimeout), maxBody: int64(cfg.MaxBodySize)}
			for _, c := range expressable {
				g.planExpress(c)
			}
			g.planExpress(expressCandidate{h: fallback})
		}
	}
	if cfg.HTTPAddr != "" {
		// The plain HTTP listener's table: the same routes, each a redirect to HTTPS unless it opted out.
		redirect := RedirectToHTTPS(cfg.Addr)
		plain := make([]router.Route, len(routes))
		for i, r := range routes {
			plain[i] = r
			if !plainHTTP[i] {
				plain[i].Handler, plain[i].StripPrefix = annotate(r.Pattern.String(), redirect), false
			}
		}
		plainTable, err := router.NewTable(plain, annotate("*", redirect))
		if err != nil {
			return nil, err
		}
		g.PlainHTTP = outer(plainTable)
	}
	return g, nil
}

// RedirectToHTTPS answers every request with a 308 to the same host, path and query over HTTPS, on the
// port of httpsAddr (left out when it is 443). 308 keeps the method and body, so a form POSTed over HTTP
// is re-sent as a POST.
func RedirectToHTTPS(httpsAddr string) http.Handler {
	_, port, _ := net.SplitHostPort(httpsAddr)
	if port == "443" {
		port = ""
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" { // HTTP/1.0 without Host: nowhere to send it
			http.Error(w, "this server answers over HTTPS: send the request there, with a Host header", http.StatusBadRequest)
			return
		}
		if strings.Contains(host, ":") { // an IPv6 literal
			host = "[" + strings.Trim(host, "[]") + "]"
		}
		if port != "" {
			host += ":" + port
		}
		w.Header().Set("Location", "https://"+host+r.URL.RequestURI())
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// onionLayers are the parts of the front onion that come from the configuration.
type onionLayers struct {
	sanitize, global, ledger, observe func(http.Handler) http.Handler // observe may be nil
	bodyTimeout                       time.Duration
	logger                            *slog.Logger
}

// onion wraps table, the route table, in the gateway's front layers. This is the one place their order is
// written; outermost first:
//
//  1. middleware.RequestID: the request's id (kept from a trusted client when valid), set before anything logs;
//  2. middleware.AccessLog: one line per request, the reqinfo record attached, timed from here;
//  3. middleware.ClientDeadlines: the stall limit on the client's body and on its reading of the answer;
//  4. observe (Options.Observe): metrics and tracing, which see the request id and every answer;
//  5. the migration ledger: counts what each stage served, per path template;
//  6. router.Sanitize: the front door (canonical path and Host, forwarding headers, framing, body limit);
//  7. the global middleware (GATEWAY_MIDDLEWARE): sees sanitised requests and every route;
//  8. the route table, then each route's own middleware and app chain.
func onion(table http.Handler, l onionLayers) http.Handler {
	h := l.ledger(l.sanitize(l.global(table)))
	if l.observe != nil {
		h = l.observe(h)
	}
	h = middleware.ClientDeadlines(l.bodyTimeout)(h)
	return middleware.RequestID()(middleware.AccessLog(l.logger)(h))
}

// laneFront is the Gateway's Handler: the front onion, and the fast lane's question (fastlane.Router).
type laneFront struct {
	http.Handler
	g *Gateway
}

// LaneHandler implements fastlane.Router: the front handler when the lane may serve r.
func (f laneFront) LaneHandler(r *http.Request) (http.Handler, func()) {
	if f.g.laneServes(r) {
		return f.Handler, nil
	}
	return nil, nil
}

// laneServes reports whether the fast lane may serve r (a head it parsed: clean path, valid Host): no
// global middleware, and its route (or the fall-through) is one app claimed without a cascade, stage or
// route middleware (a claim: see routeHandler), an HTTP app that serves r on its direct path. Everything
// between the front onion and that app is then the same on both paths, and the lane's response writer
// only has to mirror net/http's for what the direct path does.
func (g *Gateway) laneServes(r *http.Request) bool {
	if g.lane == nil {
		return false
	}
	h, ok := g.lane.Lookup(r.Method, r.Host, r.URL.Path)
	if !ok {
		return false
	}
	c, ok := h.(*claim)
	if !ok {
		return false
	}
	app := c.h
	if c.admit != nil {
		app = c.inner // the handler chain serves the request through the guard, as any other
	}
	d, ok := unwrapApp(app).(interface{ ServesDirect(*http.Request) bool })
	return ok && d.ServesDirect(r)
}

// timed records in reqinfo how long the app took, for the access log's app_duration_ms. The app's health
// report, if it has one, stays visible through the wrapper.
func timed(h http.Handler) http.Handler {
	t := timedApp{h: h}
	if hr, ok := h.(adapters.HealthReporter); ok {
		return timedReporter{t, hr}
	}
	return t
}

// timedApp's since, when set, is when the app was sent the request before its handler ran (the fast
// lane's exchanges that the handler chain finishes): its time counts from there.
type timedApp struct {
	h     http.Handler
	since time.Time
}

// Unwrap returns the app (adapters.FindReacher looks through it).
func (t timedApp) Unwrap() http.Handler { return t.h }

func (t timedApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := t.since
	if start.IsZero() {
		start = time.Now()
	}
	defer func() { reqinfo.From(r.Context()).AddAppTime(time.Since(start)) }()
	t.h.ServeHTTP(w, r)
}

type timedReporter struct {
	timedApp
	adapters.HealthReporter
}

// routeHandler is the handler of a route (pattern "*": the fall-through) whose composed handler is h.
// When h is a Cascade of apps, given, and that is one app without a pass header and nothing else, it
// returns a claim instead: the same records in reqinfo (the route, the app tried) and the same call of the
// app, in one wrapper and one record update instead of annotate's and the Cascade's. A Cascade of several
// apps is served as annotate serves it, by a chainRoute (which may get an express plan).
func routeHandler(pattern string, h http.Handler, apps []delegate.App) http.Handler {
	if len(apps) == 1 && apps[0].PassHeader == "" {
		return &claim{route: pattern, app: apps[0].Name, h: apps[0].Handler}
	}
	if c, ok := h.(*delegate.Cascade); ok && len(apps) > 1 {
		return &chainRoute{route: pattern, cascade: c}
	}
	return annotate(pattern, h)
}

// chainRoute serves a route with a cascade of apps: it records the route (and, before the cascade tries
// its own, the apps tried before it: a cascade the express path started), then serves the cascade.
type chainRoute struct {
	route   string
	before  []string
	cascade *delegate.Cascade
	x       *fastlane.Express // the express plan (nil: none)
}

func (c *chainRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := reqinfo.From(r.Context())
	info.SetRoute(c.route)
	for _, app := range c.before {
		info.Tried(app)
	}
	c.cascade.ServeHTTP(w, r)
}

// claim serves a route with its one app (see routeHandler).
type claim struct {
	route, app string
	h          http.Handler
	// x is the claim's express plan (nil: none); tried is [app], the record's Tried.
	x     *fastlane.Express
	tried []string
	// admit, when not nil, is the Admit of the route's guard (Options.RouteGuards): h is then the guard
	// before inner, the app, which records the app as tried itself.
	admit func() (func(), bool)
	inner http.Handler
}

func (c *claim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if c.admit != nil {
		reqinfo.From(r.Context()).SetRoute(c.route)
	} else {
		reqinfo.From(r.Context()).Claim(c.route, c.app)
	}
	c.h.ServeHTTP(w, r)
}

// neverAdmit is the Admit of a guard that has none: the handler chain serves every request.
func neverAdmit() (func(), bool) { return nil, false }

// triedApp records its app as tried, then serves: a guarded claim's app, as the route's cascade of one
// app records it.
type triedApp struct {
	name string
	h    http.Handler
}

func (t triedApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqinfo.From(r.Context()).Tried(t.name)
	t.h.ServeHTTP(w, r)
}

// hasRoute reports whether a route of routes has the pattern pat (canonical form).
func hasRoute(routes []plan.Route, pat string) bool {
	for _, r := range routes {
		if r.Pattern.String() == pat {
			return true
		}
	}
	return false
}

// annotate records in reqinfo which route claimed the request.
func annotate(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqinfo.From(r.Context()).SetRoute(pattern)
		h.ServeHTTP(w, r)
	})
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

// LimitListener wraps the raw (not yet TLS) listener ln with the configured connection limits,
// GATEWAY_MAX_CONNS in total and GATEWAY_MAX_CONNS_PER_CLIENT per peer IP: a connection past them is
// refused at accept time, with a raw 503 (Retry-After: 1, Connection: close) on plain HTTP and closed
// without an answer under TLS. Refusals are logged at most once a second; onReject, when not nil, is
// called with the reason of each ("total" or "per_client"), e.g. to count it.
func LimitListener(cfg config.Config, ln net.Listener, logger *slog.Logger, onReject func(reason string)) *connlimit.Listener {
	return limitListener(FrontSettingsOf(cfg), ln, logger, onReject)
}

func limitListener(s FrontSettings, ln net.Listener, logger *slog.Logger, onReject func(reason string)) *connlimit.Listener {
	return connlimit.New(ln, connlimit.Options{
		Max:       s.MaxConns,
		PerClient: s.MaxConnsPerClient,
		Reply:     !s.TLS,
		Logger:    logger,
		OnReject:  onReject,
	})
}

// ParkIdle wraps ln, the connection-limited plain-HTTP listener srv is about to serve, so that keep-alive
// client connections idle for GATEWAY_IDLE_PARK_AFTER are parked (internal/idlepark: held in epoll without
// a goroutine or buffers, and served again when their next request arrives), and chains its ConnState
// hook on srv. It must wrap the connection limiter (not be wrapped by it): a parked connection keeps its
// slot and is not admitted twice. It returns ln unchanged and a nil *idlepark.Listener when parking is
// off: GATEWAY_IDLE_PARK_AFTER=0, TLS (GATEWAY_TLS_CERT set), srv speaking unencrypted HTTP/2, a system
// other than Linux, or epoll refused (logged).
func ParkIdle(cfg config.Config, srv *http.Server, ln net.Listener, logger *slog.Logger) (net.Listener, *idlepark.Listener) {
	return parkIdle(FrontSettingsOf(cfg), srv, ln, logger)
}

func parkIdle(s FrontSettings, srv *http.Server, ln net.Listener, logger *slog.Logger) (net.Listener, *idlepark.Listener) {
	if s.IdleParkAfter <= 0 || s.TLS || !idlepark.Supported {
		return ln, nil
	}
	if srv.Protocols != nil && srv.Protocols.UnencryptedHTTP2() {
		return ln, nil // parking follows net/http's HTTP/1 serve loop; an h2c connection must never be parked
	}
	pl, err := idlepark.New(ln, idlepark.Options{After: time.Duration(s.IdleParkAfter), BurstGC: 256})
	if err != nil {
		logger.Warn("idle connection parking is off: cannot start the parker", "variable", "GATEWAY_IDLE_PARK_AFTER", "cause", err)
		return pl, nil
	}
	pl.Install(srv)
	return pl, pl
}

// Server returns an http.Server for h with the configured limits: header size (431 past it, answered by
// net/http), header read timeout and keep-alive idle timeout. Request bodies have no whole-request read
// deadline, so slow but steady uploads are not cut; the upstream timeout bounds the wait for an answer.
func Server(cfg config.Config, h http.Handler, logger *slog.Logger) *http.Server {
	return server(FrontSettingsOf(cfg), h, logger)
}

func server(s FrontSettings, h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Addr:              s.Addr,
		Handler:           h,
		ReadHeaderTimeout: time.Duration(s.ReadHeaderTimeout),
		IdleTimeout:       time.Duration(s.IdleTimeout),
		MaxHeaderBytes:    int(s.MaxHeaderSize),
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ConnContext:       headscan.ConnContext,
	}
}

// ScanHeads wraps ln, the raw plain-HTTP listener, so that the front door can refuse an HTTP/1.0 request
// that carried Transfer-Encoding (internal/headscan: net/http hides the field from handlers). It must be
// the innermost wrapper (under the connection limits and idle parking), and the server must come from
// Server. With TLS (GATEWAY_TLS_CERT set) it returns ln unchanged.
func ScanHeads(cfg config.Config, ln net.Listener) net.Listener {
	return scanHeads(FrontSettingsOf(cfg), ln)
}

func scanHeads(s FrontSettings, ln net.Listener) net.Listener {
	if s.TLS {
		return ln
	}
	return headscan.Listener{Listener: ln}
}

// OnClose adds f to what Close does, after the apps' pools are released: the binary releases the
// processes it runs for this configuration's apps there (package procs), once the configuration served
// its last request.
func (g *Gateway) OnClose(f func()) { g.closers = append(g.closers, closeFunc(f)) }

type closeFunc func()

func (f closeFunc) Close() error { f(); return nil }

// Revive tells every app of g with an instance at address (adapters.Reviver) that the process there was
// restarted and is ready: a run app's supervisor calls it, so a restarted instance is not kept out of
// service until the ejection its crash caused would have ended.
func (g *Gateway) Revive(address string) {
	for _, a := range g.Apps {
		if r, ok := unwrapApp(a.Handler).(adapters.Reviver); ok {
			r.Revive(address)
		}
	}
}

// unwrapApp is the app under h's wrappers (the timing wrapper's Unwrap).
func unwrapApp(h http.Handler) http.Handler {
	for {
		u, ok := h.(interface{ Unwrap() http.Handler })
		if !ok {
			return h
		}
		h = u.Unwrap()
	}
}
