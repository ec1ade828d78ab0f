// Package router owns the front door of the gateway: request sanitising (path and Host canonicalisation,
// forwarding-header trust, upgrade and size limits) and the route table that sends each request to the
// application mounted for its host and path prefix, built on github.com/go-chi/chi/v5.
//
// What a route does not claim goes to the Fallback handler (in the gateway: the primary application and its
// delegates). The router knows nothing about adapters or configuration files: it takes http.Handlers.
package router

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
)

// Route mounts one application.
type Route struct {
	Pattern Pattern
	// Handler serves the requests the route claims. It receives the cleaned path; with StripPrefix, the
	// path below the prefix and an X-Forwarded-Prefix header.
	Handler http.Handler
	// StripPrefix removes Pattern.Prefix from the path before Handler sees it.
	StripPrefix bool
	// EncodedSlash lets requests whose path holds "%2F" reach this route (only this one) with the "%2F"
	// forwarded unchanged (r.URL.RawPath), for apps that put slashes into one segment on purpose
	// (GitLab-style project paths, object keys). Routing treats "%2F" as an ordinary character of its
	// segment; a request whose route would differ if "%2F" were read as "/" gets 400.
	EncodedSlash bool
}

// Config is everything New needs. The zero value is a router that answers 404 to everything.
type Config struct {
	Routes []Route
	// Fallback serves what no route claims; nil means 404.
	Fallback http.Handler
	// TrustedProxies are the peers whose Forwarded/X-Forwarded-* headers are believed. From every other peer
	// those headers are deleted before any application sees the request.
	TrustedProxies []netip.Prefix
	// MaxBodySize limits request bodies; 0 means unlimited. A declared larger body gets 413 before
	// anything is sent on; a chunked body is cut at the limit.
	MaxBodySize int64
}

// New validates cfg and returns the front handler: Sanitize followed by the route table. Two routes with
// the same pattern are an error.
func New(cfg Config) (http.Handler, error) {
	table, err := NewTable(cfg.Routes, cfg.Fallback)
	if err != nil {
		return nil, err
	}
	encodedSlash := false
	for _, rt := range cfg.Routes {
		encodedSlash = encodedSlash || rt.EncodedSlash
	}
	return Sanitize(SanitizeConfig{TrustedProxies: cfg.TrustedProxies, MaxBodySize: cfg.MaxBodySize, EncodedSlash: encodedSlash})(table), nil
}

// Table is the route table alone, without Sanitize: it expects canonical paths and hosts. Use New unless
// you put your own sanitising in front.
//
// chi's radix tree finds the longest mounted prefix, but the Table calls the route's handler itself, with
// the request exactly as it came in: no chi routing state in its context (an application that is itself
// a chi router, embedded in-process, routes on r.URL.Path, the path the gateway decided to give it, rather
// than on the front router's partial match), and no r.Pattern or path values of the front router. Matching
// a route allocates nothing: the chi routing contexts the lookups use are pooled.
type Table struct {
	hosts    []hostMux // exact hosts first, then wildcards by decreasing length
	anyHost  http.Handler
	fallback http.Handler
	// byHost holds the routes by pattern host, for the checks of paths other servers read differently
	// (lenientRoutesAgree), which look routes up without serving.
	byHost map[string][]Route
}

type hostMux struct {
	host string
	mux  http.Handler
}

// prefixMux routes by path prefix within one host (or for any host).
type prefixMux struct {
	tree *chi.Mux
	// handlers maps each pattern chi reports for a mount ("/api", "/api/", "/api/*") to the route's handler.
	handlers map[string]http.Handler
	// notFound serves what no prefix claims: the host's "/" route, else the next level.
	notFound http.Handler
	ctxs     sync.Pool // *chi.Context for tree lookups
}

// NewTable builds the route table. Host routes are tried first (exact host, then the longest wildcard), then
// routes without a host; within a host the longest path prefix wins. A host whose routes do not match the
// path continues with the routes without a host, then Fallback.
func NewTable(routes []Route, fallback http.Handler) (_ *Table, err error) {
	if fallback == nil {
		fallback = http.HandlerFunc(http.NotFound)
	}
	seen := map[Pattern]bool{}
	byHost := map[string][]Route{}
	for _, rt := range routes {
		if rt.Handler == nil {
			return nil, fmt.Errorf("route %s has no handler", rt.Pattern)
		}
		if rt.Pattern.Prefix == "" {
			return nil, fmt.Errorf("route %s has an empty prefix", rt.Pattern)
		}
		if seen[rt.Pattern] {
			return nil, fmt.Errorf("route %s is defined twice", rt.Pattern)
		}
		seen[rt.Pattern] = true
		byHost[rt.Pattern.Host] = append(byHost[rt.Pattern.Host], rt)
	}
	defer func() {
		// chi panics on patterns it cannot take; ParsePattern should make that impossible, but a panic at
		// start-up or reload must still come back as an error.
		if p := recover(); p != nil {
			err = fmt.Errorf("building route table: %v", p)
		}
	}()
	t := &Table{fallback: fallback, byHost: byHost}
	t.anyHost = buildMux(byHost[""], fallback)
	for h, rs := range byHost {
		if h == "" {
			continue
		}
		t.hosts = append(t.hosts, hostMux{host: h, mux: buildMux(rs, t.anyHost)})
	}
	sort.Slice(t.hosts, func(i, j int) bool {
		wi, wj := strings.HasPrefix(t.hosts[i].host, "*."), strings.HasPrefix(t.hosts[j].host, "*.")
		if wi != wj {
			return !wi
		}
		if len(t.hosts[i].host) != len(t.hosts[j].host) {
			return len(t.hosts[i].host) > len(t.hosts[j].host)
		}
		return t.hosts[i].host < t.hosts[j].host
	})
	return t, nil
}

func buildMux(routes []Route, notFound http.Handler) http.Handler {
	if len(routes) == 0 {
		return notFound
	}
	m := &prefixMux{tree: chi.NewMux(), handlers: map[string]http.Handler{}, notFound: notFound}
	m.ctxs.New = func() any { return chi.NewRouteContext() }
	for _, rt := range routes {
		h := rt.Handler
		if rt.StripPrefix {
			h = StripPrefix(rt.Pattern.Prefix)(h)
		}
		if rt.Pattern.Prefix == "/" {
			m.notFound = h
			continue
		}
		// Mounted as a plain HandlerFunc, so that chi never descends into a handler that is itself a chi
		// router: the lookup stops at the mount and the handler gets the request whole.
		m.tree.Mount(rt.Pattern.Prefix, http.HandlerFunc(h.ServeHTTP))
		for _, p := range []string{rt.Pattern.Prefix, rt.Pattern.Prefix + "/", rt.Pattern.Prefix + "/*"} {
			m.handlers[p] = h
		}
	}
	if len(m.handlers) == 0 {
		return m.notFound
	}
	return m
}

// ServeHTTP serves r with the handler of the longest prefix of r.URL.Path mounted here, else notFound.
func (m *prefixMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rctx := m.ctxs.Get().(*chi.Context)
	rctx.Reset()
	pattern := m.tree.Find(rctx, r.Method, r.URL.Path) // "" for no match and for methods chi does not know
	m.ctxs.Put(rctx)
	h, ok := m.handlers[pattern]
	if !ok {
		h = m.notFound
	}
	h.ServeHTTP(w, r)
}

// ServeHTTP routes r. The path must be clean (Sanitize makes it so); the Host is matched in canonical form
// (lowercase, no port, no trailing dot) but left unchanged on the request.
func (t *Table) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Context().Value(chi.RouteCtxKey) != nil {
		// The Table itself is mounted in a chi router: that router's state is not the application's.
		r = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, nil))
	}
	if (strings.IndexByte(r.URL.Path, ';') >= 0 || r.URL.RawPath != "") && !t.lenientRoutesAgree(r) {
		refuse(w, r, http.StatusBadRequest, "400 ambiguous request path")
		return
	}
	if len(t.hosts) == 0 {
		t.anyHost.ServeHTTP(w, r)
		return
	}
	// Matched case-insensitively rather than lowercased: no copy of the Host per request.
	host, _, err := splitHost(r.Host)
	if err != nil {
		http.Error(w, "400 bad Host header", http.StatusBadRequest)
		return
	}
	for i := range t.hosts {
		if matchHost(t.hosts[i].host, host) {
			t.hosts[i].mux.ServeHTTP(w, r)
			return
		}
	}
	t.anyHost.ServeHTTP(w, r)
}

// lenientRoutesAgree reports whether r may be served: its route is the same however a server behind the
// gateway reads the path, and an encoded slash reaches only a route that takes it.
//
//   - ";parameters" in a segment: servlet containers and Spring drop them ("/admin;x=1/secret" is
//     "/admin/secret" to them), so a path whose route changes without them would pass a protected prefix
//     ("/admin/=status:403") on to an app that serves /admin/secret. It is refused; parameters that do not
//     change the route (";jsessionid=..." rewriting) pass.
//   - "%2F" (r.URL.RawPath, left by Sanitize only with EncodedSlash): the route is chosen with "%2F" as an
//     ordinary character, must have EncodedSlash, and must be the route of the decoded path too, the path
//     CGI-family apps get as PATH_INFO and any app that decodes "%2F" reads.
func (t *Table) lenientRoutesAgree(r *http.Request) bool {
	host := ""
	if len(t.hosts) > 0 {
		h, _, err := splitHost(r.Host)
		if err != nil {
			return true // ServeHTTP answers 400 for the Host
		}
		host = h
	}
	served := t.lookup(host, r.URL.Path)
	readings := []string{r.URL.Path}
	if r.URL.RawPath != "" && hasEncodedSlash(r.URL.RawPath) {
		routing, _, err := slashForms(r.URL.RawPath)
		if err != nil {
			return false
		}
		if rt := t.lookup(host, routing); rt != served || rt == nil || !rt.EncodedSlash {
			return false
		}
		readings = append(readings, routing)
	}
	for _, p := range readings {
		if strings.IndexByte(p, ';') >= 0 && t.lookup(host, stripParams(p)) != served {
			return false
		}
	}
	return true
}

// lookup returns the route the Table serves a canonical host and clean path with (nil: the fallback),
// by the rules NewTable states: the first matching host (exact before wildcards), the longest prefix
// among its routes, else among the routes without a host.
func (t *Table) lookup(host, path string) *Route {
	longest := func(rs []Route) *Route {
		var best *Route
		for i := range rs {
			p := rs[i].Pattern.Prefix
			if (p == "/" || path == p || strings.HasPrefix(path, p+"/")) && (best == nil || len(p) > len(best.Pattern.Prefix)) {
				best = &rs[i]
			}
		}
		return best
	}
	for i := range t.hosts {
		if matchHost(t.hosts[i].host, host) {
			if rt := longest(t.byHost[t.hosts[i].host]); rt != nil {
				return rt
			}
			break
		}
	}
	return longest(t.byHost[""])
}

// Lookup returns the handler the Table serves a request with method, host (as sent: it is matched in
// canonical form) and clean path with: the route's (the Route.Handler given, without prefix stripping), or
// the fallback. ok is false when the Table cannot say without serving: a method the route tree does not
// know (such requests go to the fallback whatever their path), an invalid host, or a path with ';' or an
// encoded slash (checked against other readings while serving).
func (t *Table) Lookup(method, host, path string) (h http.Handler, ok bool) {
	h, _, ok = t.LookupRoute(method, host, path)
	return h, ok
}

// LookupRoute is Lookup that also says whether the route strips its prefix before its handler.
func (t *Table) LookupRoute(method, host, path string) (h http.Handler, strips bool, ok bool) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete,
		http.MethodOptions, http.MethodTrace:
	default:
		return nil, false, false
	}
	if strings.IndexByte(path, ';') >= 0 || strings.IndexByte(path, '%') >= 0 {
		return nil, false, false
	}
	h0, _, err := splitHost(host)
	if err != nil {
		return nil, false, false
	}
	if rt := t.lookup(h0, path); rt != nil {
		return rt.Handler, rt.StripPrefix, true
	}
	return t.fallback, false, true
}
