package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

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
	c, ok := cand.h.(*claim)
	if !ok {
		return
	}
	app := cand.app
	if app == nil {
		app = c.h
	}
	switch t := app.(type) {
	case timedApp:
		app = t.h
	case timedReporter:
		app = t.h
	default:
		return
	}
	xa, ok := app.(fastlane.ExpressApp)
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
		Record:          func(r *fastlane.Record) { env.record(c, upstream, r) },
		Started:         env.metrics.RequestStarted,
		Abandoned:       env.metrics.RequestAbandoned,
		AppendRequestID: middleware.AppendRequestID,
		ValidRequestID:  middleware.ValidRequestID,
		Forwarding:      router.ForwardingHeader,
		ClientStall:     env.bodyTimeout,
		MaxBody:         env.maxBody,
		Mount:           m,
	}
}

// record records an exchange the express path served on claim c, as the front onion's layers would:
// the access line, the request metrics, the migration ledger.
func (env *expressEnv) record(c *claim, upstream string, r *fastlane.Record) {
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
			Status: r.Status, Aborted: r.Aborted, Elapsed: elapsed, Tried: 1, Ctx: ctx})
	}
	env.rec.Record(r.Method, r.Path, s, r.Status, elapsed, true)
}

// expressRoute is the express plan of the route a request with method, host and path takes (nil: none).
func (g *Gateway) expressRoute(method, host, path string) *fastlane.Express {
	if g.express == nil {
		return nil
	}
	h, strips, ok := g.lane.LookupRoute(method, host, path)
	if !ok {
		return nil
	}
	if c, ok := h.(*claim); ok && c.x != nil && c.x.Mount.Strip == strips {
		return c.x
	}
	return nil
}

func noRelease() {}

// ExpressRoute implements fastlane.ExpressRouter on the Gateway's Handler.
func (f laneFront) ExpressRoute(method, host, path string) (*fastlane.Express, func()) {
	if x := f.g.expressRoute(method, host, path); x != nil {
		return x, noRelease
	}
	return nil, nil
}
