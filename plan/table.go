package plan

import (
	"cmp"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/migration"
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
	// Middleware describes the route's middleware, outermost first: the configured ones, then (in a
	// gateway's Routes) a count of the Go middleware of gateway.Options.RouteMiddleware.
	Middleware []string `json:"middleware,omitempty"`
}

// Table is the resolved route table, most specific first as the router tries them, then the primary and
// the delegates under the pattern "*": what `gateway check` prints and the admin API serves at /api/routes.
func (p *Plan) Table() []RouteInfo {
	var routes []RouteInfo
	for _, r := range p.Routes {
		info := RouteInfo{Pattern: r.Pattern.String(), App: r.App.Target.Raw, Name: r.App.Name, Kind: r.App.Kind.Summary,
			StripPrefix: r.App.Strip, Cascade: r.Cascade, EncodedSlash: r.EncodedSlash, PlainHTTP: r.PlainHTTP, Source: r.Source}
		if r.Stage.Stage != migration.StageNone {
			info.Stage, info.Old = stageText(r.Stage), r.Stage.Old
			info.App = withoutStageKeys(info.App)
		}
		for _, s := range r.Middleware {
			info.Middleware = append(info.Middleware, middleware.Describe(s))
		}
		routes = append(routes, info)
	}
	sortRouteInfos(routes)
	for i, a := range p.Chain {
		info := RouteInfo{Pattern: "*", App: a.Target.Raw, Name: a.Name, Kind: a.Kind.Summary, Source: a.Source}
		if a.Role == RoleDelegate {
			info.Kind += " (delegate)"
		}
		if i == 0 && p.Stage.Stage != migration.StageNone {
			info.Stage, info.Old = stageText(p.Stage), p.Chain[1].Target.Raw
		}
		routes = append(routes, info)
	}
	return routes
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
	slices.SortStableFunc(rs, func(a, b RouteInfo) int {
		a1, a2 := rank(a.Pattern)
		b1, b2 := rank(b.Pattern)
		return cmp.Or(cmp.Compare(a1, b1), cmp.Compare(a2, b2))
	})
}

// withoutStageKeys is an app URL without the stage, old and canary keys, which the table's stage column
// shows already (a YAML route's keys are folded into its app URL, the old app's URL escaped in it). The
// other keys stay as written, in their order.
func withoutStageKeys(raw string) string {
	base, query, ok := strings.Cut(raw, "?")
	if !ok {
		return raw
	}
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case migration.KeyStage, migration.KeyOld, migration.KeyCanary:
		default:
			kept = append(kept, kv)
		}
	}
	if len(kept) == 0 {
		return base
	}
	return base + "?" + strings.Join(kept, "&")
}
