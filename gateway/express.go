package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/metrics"
	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/migration"
	"github.com/switchyard/switchyard/reqinfo"
	"github.com/switchyard/switchyard/router"
)

// expressEnv is what a Gateway's express plans share: the front onion (for the exchanges the express
// path hands on) and what the onion records with (access log, metrics, migration ledger).
type expressEnv struct {
	outer       func(http.Handler) http.Handler
	rec         *migration.Recorder
	metrics     *metrics.Metrics
	logger      *slog.Logger
	bodyTimeout time.Duration
	maxBody     int64
}

// expressApp is the app behind h when h is the app's timing wrapper and nothing else, and the app has an
// express path (ok false: not so).
func expressApp(h http.Handler) (xa fastlane.ExpressApp, app http.Handler, ok bool) {
	switch t := h.(type) {
	case timedApp:
		app = t.h
	case timedReporter:
		app = t.h
	default:
		return nil, nil, false
	}
	xa, ok = app.(fastlane.ExpressApp)
	return xa, app, ok
}

// expressCandidate is a handler of the route table that may get an express plan: h, with app (the app's
// timing wrapper, before mount) told of its mount point as mount says.
type expressCandidate struct {
	h, app http.Handler // app nil: h's claim's own
	mount  fastlane.Mount
}

// planExpress gives c.h, a route's handler, its express plan when it is a claim whose app is the app's
// timing wrapper around an app with an express path (the HTTP adapter), with at most the route's mount
// (prefix stripping, a mount-point field) in between: nothing else stands between the front onion and
// that app, and the plan's records mirror the claim and the timer.
func (g *Gateway) planExpress(cand expressCandidate) {
	if cr, ok := cand.h.(*chainRoute); ok {
		g.planCascade(cr)
		return
	}
	c, ok := cand.h.(*claim)
	if !ok {
		return
	}
	app := cand.app
	if app == nil {
		app = c.h
	}
	xa, app, ok := expressApp(app)
	if !ok {
		return
	}
	env := g.express
	c.tried = []string{c.app}
	upstream := ""
	if u, ok := app.(interface{ Upstream() string }); ok {
		upstream = u.Upstream()
	}
	m := cand.mount
	c.x = &fastlane.Express{
		App: xa,
		Finish: func(rest http.Handler, appStart time.Time) http.Handler {
			// The handler chain's layers from the front onion to the app, the route's mount included.
			var h http.Handler = timedApp{h: rest, since: appStart}
			if m.Field == router.ScriptNameField {
				h = router.ScriptNameHeader(m.Prefix)(h)
			}
			h = &claim{route: c.route, app: c.app, h: h}
			if m.Strip {
				h = router.StripPrefix(m.Prefix)(h)
			}
			return env.outer(h)
		},
		Record: func(r *fastlane.Record) { env.record(c, upstream, r) },
		Mount:  m,
	}
	env.common(c.x)
}

// common sets what every express plan of env has the same.
func (env *expressEnv) common(x *fastlane.Express) {
	x.Started, x.Abandoned = env.metrics.RequestStarted, env.metrics.RequestAbandoned
	x.AppendRequestID, x.ValidRequestID = middleware.AppendRequestID, middleware.ValidRequestID
	x.Forwarding = router.ForwardingHeader
	x.ClientStall, x.MaxBody = env.bodyTimeout, env.maxBody
}

// planCascade gives cr its express plan when every app of its cascade is the app's timing wrapper around
// an app with an express path, none with a pass header or a fall-back: one plan per position, each with
// the records of the apps tried up to it and the handler chain's cascade from it on (Express.Next).
func (g *Gateway) planCascade(cr *chainRoute) {
	apps := cr.cascade.Apps
	xas := make([]fastlane.ExpressApp, len(apps))
	names := make([]string, len(apps))
	upstreams := make([]string, len(apps))
	for i, a := range apps {
		if a.PassHeader != "" || a.FallBack {
			return
		}
		xa, app, ok := expressApp(a.Handler)
		if !ok {
			return
		}
		xas[i], names[i] = xa, a.Name
		if u, ok := app.(interface{ Upstream() string }); ok {
			upstreams[i] = u.Upstream()
		}
	}
	env := g.express
	cas := cr.cascade
	pass, hold := cas.Passes, cas.HoldLimit()
	var next *fastlane.Express
	for i := len(apps) - 1; i >= 0; i-- {
		c := &claim{route: cr.route, app: names[i], tried: names[:i+1]} // (its records, not a handler)
		upstream := upstreams[i]
		x := &fastlane.Express{
			App: xas[i],
			Finish: func(rest http.Handler, appStart time.Time) http.Handler {
				// The cascade from this app on, with rest in its place; the apps before it already passed.
				from := append([]delegate.App{{Name: names[i], Handler: timedApp{h: rest, since: appStart}}}, apps[i+1:]...)
				return env.outer(&chainRoute{route: cr.route, before: names[:i],
					cascade: &delegate.Cascade{Apps: from, Pass: cas.Pass, BodyLimit: cas.BodyLimit, Logger: cas.Logger}})
			},
			Record: func(r *fastlane.Record) { env.record(c, upstream, r) },
			Next:   next,
			Pass:   pass,
			Hold:   hold,
		}
		env.common(x)
		next = x
	}
	cr.x = next
}

// record records an exchange the express path served on claim c, as the front onion's layers would:
// the access line, the request metrics, the migration ledger.
func (env *expressEnv) record(c *claim, upstream string, r *fastlane.Record) {
	if r.Upstream != "" {
		upstream = r.Upstream // the instance of an app of several
	}
	elapsed := r.End.Sub(r.Start)
	s := reqinfo.Snapshot{Route: c.route, App: c.app, Tried: c.tried, Upstream: upstream, AppTime: r.End.Sub(r.AppStart)}
	ctx := context.Background()
	if env.logger != nil && middleware.AccessLogEnabled(ctx, env.logger) {
		// The line's strings are copies: a handler may keep the record's attributes.
		middleware.WriteAccessLine(ctx, env.logger, &middleware.AccessLine{
			Method: strings.Clone(r.Method), Path: strings.Clone(r.Path), Host: strings.Clone(r.Host),
			Status: r.Status, Bytes: r.Bytes, Start: r.Start, End: r.End, Client: r.Client,
			RequestID: strings.Clone(r.RequestID), TraceParent: strings.Clone(r.TraceParent), Route: c.route, App: c.app,
			ProtoMajor: 1, Tried: c.tried, Upstream: upstream, AppTime: s.AppTime, Aborted: r.Aborted,
		})
	}
	if env.metrics != nil { // RequestStarted was the plan's Started
		env.metrics.RequestDone(&metrics.Done{Route: c.route, App: c.app, ProtoMajor: 1, Method: r.Method,
			Status: r.Status, Aborted: r.Aborted, Elapsed: elapsed, Tried: len(c.tried), Ctx: ctx})
	}
	env.rec.Record(r.Method, r.Path, s, r.Status, elapsed, true)
}

// expressRoute is the express plan of the route a request with method, host and path takes (nil: none),
// with its release (the route's guard's, when it has one).
func (g *Gateway) expressRoute(method, host, path string) (*fastlane.Express, func()) {
	if g.express == nil {
		return nil, nil
	}
	h, strips, ok := g.lane.LookupRoute(method, host, path)
	if !ok {
		return nil, nil
	}
	switch c := h.(type) {
	case *claim:
		if c.x == nil || c.x.Mount.Strip != strips {
			return nil, nil
		}
		if c.admit == nil {
			return c.x, noRelease
		}
		// The route's guard lets the request through only when it would pass it straight on: else the
		// handler chain serves it through the guard (a run app that must start first, or is down).
		if release, ok := c.admit(); ok {
			return c.x, release
		}
	case *chainRoute:
		if !strips && c.x != nil {
			return c.x, noRelease
		}
	}
	return nil, nil
}

func noRelease() {}

// ExpressRoute implements fastlane.ExpressRouter on the Gateway's Handler.
func (f laneFront) ExpressRoute(method, host, path string) (*fastlane.Express, func()) {
	return f.g.expressRoute(method, host, path)
}
