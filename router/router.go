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
	return Sanitize(SanitizeConfig{TrustedProxies: cfg.TrustedProxies, MaxBodySize: cfg.MaxBodySize})(table), nil
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
	t := &Table{fallback: fallback}
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
