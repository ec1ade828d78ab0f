// Package gateway owns the assembly of a serving gateway from a validated configuration: it builds every
// application through the adapter registry, composes the primary and its delegates into a cascade, mounts
// the routes on the front router, and wraps the whole in the front-door middleware. It also owns the
// http.Server settings that carry the configured limits.
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
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/headscan"
	"github.com/switchyard/switchyard/internal/idlepark"
	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/migration"
	"github.com/switchyard/switchyard/reqinfo"
	"github.com/switchyard/switchyard/router"
)

// RouteInfo describes one resolved route, for `gateway check` and the admin API.
type RouteInfo struct {
	Pattern string `json:"pattern"`
	App     string `json:"app"`
	// Name is the app's label in logs, metrics and the migration report (adapters.Target.Name).
	Name        string `json:"name"`
	Kind        string `json:"kind"`
	StripPrefix bool   `json:"strip_prefix"`
	Cascade     bool   `json:"cascade"`
	// EncodedSlash is the encoded_slash option: "%2F" reaches this route's app unchanged.
	EncodedSlash bool `json:"encoded_slash,omitempty"`
	// PlainHTTP is the https_redirect=false option: the plain HTTP listener serves the route too.
	PlainHTTP bool   `json:"plain_http,omitempty"`
	Source    string `json:"source"`
	// Stage is the route's migration stage ("" for none; "canary 10%" with its share); Old its old app.
	Stage string `json:"stage,omitempty"`
	Old   string `json:"old,omitempty"`
	// Middleware describes the route's middleware, outermost first (configured, then Options.RouteMiddleware).
	Middleware []string `json:"middleware,omitempty"`
}

// Gateway is a built configuration.
type Gateway struct {
	// Handler is the front handler: request id, access log, sanitising, routing.
	Handler http.Handler
	// PlainHTTP is the handler of the plain HTTP listener next to HTTPS (GATEWAY_HTTP_ADDR), nil when
	// there is none: the same stack as Handler, whose route table redirects every request to HTTPS (308,
	// path and query kept) except on the routes with https_redirect=false, which it serves.
	PlainHTTP http.Handler
	// Routes is the resolved route table, most specific first as the router tries them; the primary and
	// delegates are listed last under the pattern "*".
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
	// NotForReadiness is the app option ready=false, or a side of a migration that its stage sends no
	// client to (servesClients): /readyz reports the app but never fails because of it.
	NotForReadiness bool
}

// servesClients says whether the side ("new" or "old") of a migration answers clients at stage s. The new
// app does not before canary (legacy sends it nothing; shadow sends copies whose answers no client sees),
// the old app does not once retired. Such an app being down must not take the gateway out of a load
// balancer: a new app not yet deployed at legacy, or a Django shut down after its routes were retired.
func servesClients(s migration.Stage, side string) bool {
	switch side {
	case "new":
		return s != migration.StageLegacy && s != migration.StageShadow
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
	// RouteMiddleware adds Go middleware to routes, by route pattern in canonical form ("/api/",
	// "admin.example.com/"): it wraps the route's app inside the configured middleware, first outermost.
	// A pattern no route has is an error. Build them with the middleware package's constructors
	// (middleware.Compress, middleware.BasicAuth, ...) or any func(http.Handler) http.Handler.
	RouteMiddleware map[string][]func(http.Handler) http.Handler
	// Previous is the gateway this build replaces (on a reload), or nil. The migration numbers of every
	// route whose migration is unchanged (same pattern, same apps as configured, same stage settings: see
	// migration.RecorderOptions.Previous) carry over: counters, latency histograms, ledger rows, shadow
	// results and the negative cache. Gateway.NumbersReset names the routes that start afresh.
	Previous *Gateway
}

// Build turns cfg into a Gateway. Every error names where the offending value was configured. On error
// nothing stays open.
func Build(cfg config.Config, opts Options) (_ *Gateway, err error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	var prevRec *migration.Recorder
	if opts.Previous != nil {
		prevRec = opts.Previous.Migration
	}
	rec := migration.NewRecorder(migration.RecorderOptions{Previous: prevRec})
	g := &Gateway{Admin: map[string]http.Handler{
		"/api/migration": rec.JSONHandler(),
		"/migration":     rec.PageHandler(),
	}, Collectors: []prometheus.Collector{rec.Collector()}, Migration: rec}
	g.Warnings = append(g.Warnings, tinySizeWarnings(cfg)...)
	defer func() {
		if err != nil {
			g.Close()
		}
	}()
	var errs config.Errors

	var spec migration.Spec // the migration keys of the app built last with roleRoute
	build := func(source, raw, mount string, role appRole) (b builtApp, err error) {
		t, kind, err := opts.Registry.Parse(raw)
		if err != nil {
			return b, fmt.Errorf("%s: %v", source, err)
		}
		b.kind, b.name, b.id = kind, t.Name, appIdentity(t)
		g.Warnings = append(g.Warnings, processEnvParamWarnings(source, raw, t.URL.Scheme, t.Options)...)
		t.Mount = mount
		// The old app of a migrating route gets the request as it did before the route existed: a
		// mount-aware one sees the whole path (unless its script_name option says otherwise).
		t.FullPath = role == roleOld
		t.DefaultTimeout = time.Duration(cfg.UpstreamTimeout)
		t.ReadTimeout = time.Duration(cfg.UpstreamReadTimeout)
		if t.ReadTimeout == 0 {
			t.ReadTimeout = -1 // configured off, not "the kind's default"
		}
		t.MaxResponseHeaderBytes = int64(cfg.MaxResponseHeaderSize)
		fail := func(err error) (builtApp, error) {
			return builtApp{kind: kind}, fmt.Errorf("%s: app %q: %s", source, raw, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		if b.passHeader, err = passHeaderOption(t.Options); err != nil {
			return fail(err)
		}
		ready, err := t.Options.Bool("ready", true)
		if err != nil {
			return fail(err)
		}
		b.unready = !ready
		if role == roleRoute {
			if spec, err = migration.ParseSpec(func(k string) (string, bool) {
				return t.Options.String(k, ""), t.Options.Has(k)
			}, false); err != nil {
				return fail(err)
			}
			if b.cascade, err = t.Options.Bool("cascade", false); err != nil {
				return fail(err)
			}
			if b.encodedSlash, err = t.Options.Bool(EncodedSlashOption, false); err != nil {
				return fail(err)
			}
			redirect, err := t.Options.Bool(HTTPSRedirectOption, true)
			if err != nil {
				return fail(err)
			}
			b.plainHTTP = !redirect
			if b.plainHTTP && cfg.HTTPAddr == "" {
				return fail(fmt.Errorf("option %s=false: there is no plain HTTP listener (GATEWAY_HTTP_ADDR) to serve the route on", HTTPSRedirectOption))
			}
		} else if role != roleOld && t.Options.Has(HTTPSRedirectOption) {
			return fail(fmt.Errorf("option %s applies to routes: mount the app on a route to keep it on plain HTTP (/=APP?%s=false takes every path no other route claims)", HTTPSRedirectOption, HTTPSRedirectOption))
		} else if role != roleOld && t.Options.Has(EncodedSlashOption) {
			return fail(fmt.Errorf("option %s applies to routes, whose table decides where an encoded slash may go: mount the app on a route instead (/=APP?%s=true takes every path no longer route claims)", EncodedSlashOption, EncodedSlashOption))
		}
		if role == roleRoute || role == roleOld {
			if !kind.MountAware || t.Options.Has("strip_prefix") { // a mount-aware app only refuses it
				if b.strip, err = t.Options.Bool("strip_prefix", false); err != nil {
					return fail(err)
				}
			}
			if b.strip && kind.MountAware {
				return fail(fmt.Errorf("strip_prefix does not apply to %s apps: they get the route's prefix as SCRIPT_NAME (%s= makes them see the full path)", t.URL.Scheme, adapters.ScriptNameOption))
			}
			if err := prefixHeaderOption(t, kind, &b); err != nil {
				return fail(err)
			}
		} else if t.Options.Has(PrefixHeaderOption) {
			return fail(fmt.Errorf("option %s applies to routes: an app at the root has no prefix to announce", PrefixHeaderOption))
		}
		if kind.MountAware {
			if err := adapters.ResolveMount(&t, kind); err != nil {
				return fail(err)
			}
			b.scriptName = t.Mount
		}
		b.addr = appAddress(t)
		h, err := opts.Registry.Build(t)
		if err != nil {
			return b, fmt.Errorf("%s: %v", source, err)
		}
		g.Warnings = append(g.Warnings, socketDirWarnings(source, t)...)
		if c, ok := h.(io.Closer); ok {
			g.closers = append(g.closers, c)
		}
		b.h = timed(h)
		return b, nil
	}

	var chain []delegate.App
	var chainIDs []string // identities of the chain's apps, for the migration numbers' keys
	var roots []rootApp   // the primary and delegates, for the shared-address check of routes
	if cfg.Primary != "" {
		b, err := build(cfg.Name("GATEWAY_PRIMARY"), cfg.Primary, "", rolePrimary)
		if err != nil {
			errs = append(errs, err)
		} else {
			chain = append(chain, delegate.App{Name: b.name, Handler: b.h, PassHeader: b.passHeader})
			chainIDs = append(chainIDs, b.id)
			roots = append(roots, rootApp{cfg.Name("GATEWAY_PRIMARY"), b})
			g.Apps = append(g.Apps, BuiltApp{Name: b.name, Handler: b.h, Role: "primary", Pattern: "*", NotForReadiness: b.unready})
			g.Routes = append(g.Routes, RouteInfo{Pattern: "*", App: cfg.Primary, Name: b.name, Kind: b.kind.Summary, Source: cfg.Name("GATEWAY_PRIMARY")})
		}
	}
	for i, d := range cfg.Delegates {
		src := fmt.Sprintf("%s[%d]", cfg.Name("GATEWAY_DELEGATES"), i)
		b, err := build(src, d, "", roleDelegate)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		chain = append(chain, delegate.App{Name: b.name, Handler: b.h, PassHeader: b.passHeader})
		chainIDs = append(chainIDs, b.id)
		roots = append(roots, rootApp{src, b})
		g.Apps = append(g.Apps, BuiltApp{Name: b.name, Handler: b.h, Role: "delegate", Pattern: "*", NotForReadiness: b.unready})
		g.Routes = append(g.Routes, RouteInfo{Pattern: "*", App: d, Name: b.name, Kind: b.kind.Summary + " (delegate)", Source: src})
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
	if len(chain) > 0 {
		pairSpec, err := migration.ParsePairStage(cfg.Stage)
		g.Warnings = append(g.Warnings, ignoredStageKeys(cfg.Name("GATEWAY_STAGE"), pairSpec)...)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s=%q: %s", cfg.Name("GATEWAY_STAGE"), cfg.Stage, strings.ReplaceAll(err.Error(), "\n", "; ")))
		case pairSpec.Stage != migration.StageNone && len(chain) > 1 && cfg.Primary != "" && chain[0].Name == chain[1].Name:
			errs = append(errs, fmt.Errorf("%s=%q: the primary (the new app) and the first delegate (the old app) are both named %q: give one a name= option so the report can tell them apart", cfg.Name("GATEWAY_STAGE"), cfg.Stage, chain[0].Name))
		case pairSpec.Stage != migration.StageNone && len(chain) > 1 && cfg.Primary != "":
			fallback = annotate("*", compose("*", chainKey, pairSpec, chain[0], chain[1:]))
			if len(g.Apps) > 1 && g.Apps[0].Role == "primary" && g.Apps[1].Role == "delegate" {
				g.Apps[0].Side, g.Apps[1].Side = "new", "old"
				for i := range 2 {
					g.Apps[i].NotForReadiness = g.Apps[i].NotForReadiness || !servesClients(pairSpec.Stage, g.Apps[i].Side)
				}
			}
			g.Routes[0].Stage, g.Routes[0].Old = stageText(pairSpec), cfg.Delegates[0]
		case pairSpec.Stage != migration.StageNone:
			errs = append(errs, fmt.Errorf("%s=%q: a stage needs %s (the new app) and %s (the first is the old app)", cfg.Name("GATEWAY_STAGE"), cfg.Stage, cfg.Ref("GATEWAY_PRIMARY", "GATEWAY_STAGE"), cfg.Ref("GATEWAY_DELEGATES", "GATEWAY_STAGE")))
		default:
			rec.AddRoute(migration.RouteMeta{Pattern: "*", Key: chainKey})
			fallback = routeHandler("*", chainOf(chain), chain)
		}
	}

	var routes []router.Route
	var plainHTTP []bool // by routes' index: https_redirect=false
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
		where := rs.Source + ": route " + p.String() // errors name the route, not only where it was configured
		b, err := build(where, rs.App, mount, roleRoute)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h, strip, cascade := b.h, b.strip, b.cascade
		newIdx := len(g.Apps)
		g.Apps = append(g.Apps, BuiltApp{Name: b.name, Handler: h, Role: "route", Pattern: p.String(), NotForReadiness: b.unready})
		if b.scriptNameHeader {
			h = router.ScriptNameHeader(p.Prefix)(h)
		}
		g.Warnings = append(g.Warnings, sharedAddressWarnings(rs.Source, p.String(), "", b, roots)...)
		info := RouteInfo{Pattern: p.String(), App: rs.App, Name: b.name, Kind: b.kind.Summary, StripPrefix: strip, Cascade: cascade, Source: rs.Source}
		routeSpec := spec
		if strip && (routeSpec.Stage != migration.StageNone || cascade) {
			// Other apps answer on this route (the old app, the fall-through chain): they get the client's
			// path, as with no route at all, so only the route's own app is stripped. Route middleware then
			// sees the client's path too.
			h = router.StripPrefix(p.Prefix)(h)
			strip = false
		}
		newApp := delegate.App{Name: b.name, Handler: h, PassHeader: b.passHeader}
		var only []delegate.App // the route's one app when h is nothing but a Cascade of it
		key := "app " + b.id
		if cascade {
			key += "\nthen " + chainKey
		}
		g.Warnings = append(g.Warnings, ignoredStageKeys(rs.Source+": route "+p.String(), routeSpec)...)
		if routeSpec.Stage != migration.StageNone {
			var old []delegate.App
			if routeSpec.Old != "" {
				ob, err := build(where+" (old)", routeSpec.Old, mount, roleOld)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				oh := ob.h
				if ob.strip {
					oh = router.StripPrefix(p.Prefix)(oh)
				}
				if ob.scriptNameHeader {
					oh = router.ScriptNameHeader(p.Prefix)(oh)
				}
				if ob.name == b.name {
					errs = append(errs, fmt.Errorf("%s: route %s: the new app and the old app are both named %q: give one a name= option so the report can tell them apart", rs.Source, p, b.name))
					continue
				}
				g.Apps[newIdx].Side = "new"
				g.Apps[newIdx].NotForReadiness = b.unready || !servesClients(routeSpec.Stage, "new")
				g.Apps = append(g.Apps, BuiltApp{Name: ob.name, Handler: oh, Role: "route", Pattern: p.String(), Side: "old", NotForReadiness: ob.unready || !servesClients(routeSpec.Stage, "old")})
				g.Warnings = append(g.Warnings, sharedAddressWarnings(rs.Source, p.String(), "old ", ob, roots)...)
				old = append(old, delegate.App{Name: ob.name, Handler: oh, PassHeader: ob.passHeader})
				key += "\nold " + ob.id
			}
			if cascade {
				old = append(old, chain...)
			}
			h = compose(p.String(), key, routeSpec, newApp, old)
			info.Stage, info.Old = stageText(routeSpec), routeSpec.Old
		} else if cascade {
			if len(chain) == 0 {
				g.Warnings = append(g.Warnings, fmt.Sprintf("%s: route %s: cascade=true but there is no primary or delegate to fall through to: the route's own answers are final", rs.Source, p))
			}
			h = chainOf(append([]delegate.App{newApp}, chain...))
			rec.AddRoute(migration.RouteMeta{Pattern: p.String(), Key: key})
		} else {
			h = chainOf([]delegate.App{newApp})
			only = []delegate.App{newApp}
			rec.AddRoute(migration.RouteMeta{Pattern: p.String(), Key: key})
		}
		// Route middleware wraps the app as the router hands it over: after prefix stripping, so rewrite and
		// redirect rules see the path the app sees, and inside the route's reqinfo annotation.
		if extra := opts.RouteMiddleware[p.String()]; len(extra) > 0 {
			h = middleware.Chain(extra...)(h)
		}
		mw, desc, err := middleware.Build(rs.Middleware, middleware.BuildEnv{TrustedProxies: cfg.TrustedProxies, Logger: logger, RoutePrefix: mount})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: route %s: %s", rs.Source, p, strings.ReplaceAll(err.Error(), "\n", "; ")))
			continue
		}
		h = mw(h)
		info.Middleware = desc
		if extra := opts.RouteMiddleware[p.String()]; len(extra) > 0 {
			info.Middleware = append(info.Middleware, fmt.Sprintf("%d Go middleware", len(extra)))
		}
		if len(info.Middleware) > 0 {
			only = nil // the middleware stands between the route's annotation and its app
		}
		routes = append(routes, router.Route{Pattern: p, Handler: routeHandler(p.String(), h, only), StripPrefix: strip, EncodedSlash: b.encodedSlash})
		plainHTTP = append(plainHTTP, b.plainHTTP)
		info.EncodedSlash, info.PlainHTTP = b.encodedSlash, b.plainHTTP
		routeInfos = append(routeInfos, info)
	}
	for pat := range opts.RouteMiddleware {
		found := false
		for _, r := range routes {
			found = found || r.Pattern.String() == pat
		}
		if !found {
			errs = append(errs, fmt.Errorf("gateway.Options.RouteMiddleware: no route has pattern %q", pat))
		}
	}
	globalMW, globalDesc, err := middleware.Build(cfg.Middleware, middleware.BuildEnv{TrustedProxies: cfg.TrustedProxies, Logger: logger})
	if err != nil {
		src := cfg.MiddlewareSource
		if src == "" {
			src = "GATEWAY_MIDDLEWARE"
		}
		errs = append(errs, fmt.Errorf("%s: %s", src, strings.ReplaceAll(err.Error(), "\n", "; ")))
	}
	g.Middleware = globalDesc
	if len(errs) > 0 {
		return nil, errs
	}
	g.NumbersReset, g.NumbersRemoved = rec.Carried()
	sortRouteInfos(routeInfos)
	g.Routes = append(routeInfos, g.Routes...)

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
	for {
		u, ok := app.(interface{ Unwrap() http.Handler })
		if !ok {
			break
		}
		app = u.Unwrap()
	}
	d, ok := app.(interface{ ServesDirect(*http.Request) bool })
	return ok && d.ServesDirect(r)
}

// tinySizeWarnings warns about size settings under 1 KiB: a bare number is bytes, so
// GATEWAY_MAX_BODY_SIZE=10 meant as 10 MiB refuses nearly every upload.
func tinySizeWarnings(cfg config.Config) []string {
	var out []string
	for _, s := range []struct {
		variable string
		v        config.Size
	}{
		{"GATEWAY_MAX_BODY_SIZE", cfg.MaxBodySize}, {"GATEWAY_MAX_HEADER_SIZE", cfg.MaxHeaderSize},
		{"GATEWAY_CASCADE_BODY_LIMIT", cfg.CascadeBodyLimit}, {"GATEWAY_MAX_RESPONSE_HEADER_SIZE", cfg.MaxResponseHeaderSize},
	} {
		if s.v > 0 && s.v < 1024 {
			out = append(out, fmt.Sprintf("%s=%d is %d bytes: sizes without a unit are bytes (write %dKiB or %dMiB if that was meant)", cfg.Name(s.variable), s.v, s.v, s.v, s.v))
		}
	}
	return out
}

// ignoredStageKeys warns about migration keys another stage uses: kept (moving back is one edit) and
// ignored at the current stage.
func ignoredStageKeys(where string, s migration.Spec) []string {
	var out []string
	for _, k := range s.Ignored {
		name := k
		if k == migration.KeyCanary {
			name = "canary (canary_percent in the file)"
		}
		out = append(out, fmt.Sprintf("%s: %s is a setting of another stage: kept, and ignored at stage %s", where, name, s.Stage))
	}
	return out
}

// stageText prints a stage for the route table: "canary 10%" carries its share.
func stageText(s migration.Spec) string {
	if s.Stage == migration.StageCanary {
		return fmt.Sprintf("canary %s%%", strconv.FormatFloat(s.CanaryPercent, 'f', -1, 64))
	}
	return string(s.Stage)
}

// timed records in reqinfo how long the app took, for the access log's app_duration_ms. The app's health
// report, if it has one, stays visible through the wrapper.
func timed(h http.Handler) http.Handler {
	t := timedApp{h}
	if hr, ok := h.(adapters.HealthReporter); ok {
		return timedReporter{t, hr}
	}
	return t
}

type timedApp struct{ h http.Handler }

// Unwrap returns the app (adapters.FindReacher looks through it).
func (t timedApp) Unwrap() http.Handler { return t.h }

func (t timedApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
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
// app, in one wrapper and one record update instead of annotate's and the Cascade's.
func routeHandler(pattern string, h http.Handler, apps []delegate.App) http.Handler {
	if len(apps) == 1 && apps[0].PassHeader == "" {
		return &claim{route: pattern, app: apps[0].Name, h: apps[0].Handler}
	}
	return annotate(pattern, h)
}

// claim serves a route with its one app (see routeHandler).
type claim struct {
	route, app string
	h          http.Handler
}

func (c *claim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqinfo.From(r.Context()).Claim(c.route, c.app)
	c.h.ServeHTTP(w, r)
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
