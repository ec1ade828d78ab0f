package migration

import (
	"io"
	"log/slog"
	"net/http"

	"github.com/switchyard/switchyard/delegate"
)

// Composition is what Compose needs to build one migrating route.
type Composition struct {
	// Pattern is the route pattern as reqinfo records it ("*" for the primary/delegate pair).
	Pattern string
	Spec    Spec
	// Key identifies the apps as configured (the new, the old and any further fall-through apps, with
	// their options but without the migration keys): with Spec.Key it makes RouteMeta.Key, so a reload
	// that changes neither keeps the route's numbers.
	Key string
	// New is the new app; Old the old app followed by any further fall-through apps (the other delegates).
	New delegate.App
	Old []delegate.App
	// Cascade builds a fall-through chain over apps with the gateway's pass statuses and body limit; it
	// must record each app it tries in reqinfo (a delegate.Cascade does, even over one app).
	Cascade func(apps []delegate.App) http.Handler
	// ShadowBodyLimit is the request body held for a shadow copy (0: the delegate default).
	ShadowBodyLimit int64
	Logger          *slog.Logger
}

// Compose builds the handler of a route at its stage and registers the route with r:
//
//	legacy   old (and the rest of Old) serves
//	shadow   old serves; a copy goes to new through a delegate.Shadow whose answers r compares
//	canary   a delegate.Split: Spec.CanaryPercent of clients go to new (falling through to old on a pass
//	         status), the others to old
//	primary  new serves, falling through to old; with Spec.NegativeCache, through a NegativeCache
//	retired  new serves, falling through only to the apps after old
//
// In canary and primary, a request the new app never received (delegate.App.FallBack: its connection
// could not be opened, no instance was available) is served by old, which served it before the
// migration; r counts it per route (RouteReport.FellBack) and a NegativeCache does not take it for a
// miss. The client's canary side does not change.
//
// The returned closer (nil when nothing needs closing) stops a shadow's workers.
func (r *Recorder) Compose(c Composition) (http.Handler, io.Closer) {
	s := c.Spec
	meta := RouteMeta{Pattern: c.Pattern, Stage: s.Stage, New: c.New.Name, CanaryPercent: s.CanaryPercent, Key: c.Key + "\n" + s.Key()}
	if len(c.Old) > 0 {
		meta.Old = c.Old[0].Name
	}
	r.AddRoute(meta)
	withNew := append([]delegate.App{c.New}, c.Old...)
	if len(c.Old) > 0 && (s.Stage == StageCanary || s.Stage == StagePrimary) {
		withNew[0].FallBack = true
	}
	var rest []delegate.App
	if len(c.Old) > 1 {
		rest = c.Old[1:]
	}
	switch s.Stage {
	case StageLegacy:
		return c.Cascade(c.Old), nil
	case StageShadow:
		sh := delegate.NewShadow(c.Cascade(c.Old), c.New.Handler, delegate.ShadowOptions{
			Methods: s.ShadowMethods, Workers: s.ShadowWorkers, Queue: s.ShadowQueue, BodyLimit: c.ShadowBodyLimit,
			Observe: r.ShadowObserver(c.Pattern, CompareOptions{Headers: s.ShadowHeaders, Ignore: s.ShadowIgnore}),
			Logger:  c.Logger,
		})
		r.AttachShadow(c.Pattern, sh.Stats)
		return sh, sh
	case StageCanary:
		return &delegate.Split{New: c.Cascade(withNew), Old: c.Cascade(c.Old), Percent: s.CanaryPercent,
			Cookie: s.StickyCookie, Header: s.StickyHeader, Salt: c.Pattern}, nil
	case StagePrimary:
		full := c.Cascade(withNew)
		if s.NegativeCache > 0 && len(c.Old) > 0 {
			nc := r.negativeCache(c.Pattern, func() *NegativeCache { return NewNegativeCache(s.NegativeCache, s.NegativeCacheTTL, nil) })
			return nc.Handler(c.New.Name, full, c.Cascade(c.Old)), nil
		}
		return full, nil
	case StageRetired:
		return c.Cascade(append([]delegate.App{c.New}, rest...)), nil
	}
	return c.Cascade(withNew), nil
}
