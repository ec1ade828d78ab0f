package router

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// matchPatterns is the route table FuzzRouteMatch builds: nested prefixes, exact and wildcard hosts, and a
// strip_prefix route.
var matchPatterns = []struct {
	pattern string
	strip   bool
}{
	{"/api/", true}, {"/api/v2/", false}, {"/public/", false}, {"/a/b/c/", false},
	{"admin.example.com/", false}, {"admin.example.com/api/", true},
	{"*.example.com/shop/", false}, {"eu.example.com/shop/", false}, {"*.eu.example.com/", false},
}

// referenceRoute picks the route for a canonical host and clean path the way NewTable documents it,
// independently of chi: the exact host's routes, else the longest matching wildcard host's; within them
// the longest prefix that contains the path; if none there, the routes without a host; else "" (fallback).
func referenceRoute(pats []Pattern, host, path string) (Pattern, bool) {
	contains := func(prefix string) bool {
		return prefix == "/" || path == prefix || strings.HasPrefix(path, prefix+"/")
	}
	best := func(h string) (Pattern, bool) {
		var out Pattern
		found := false
		for _, p := range pats {
			if p.Host == h && contains(p.Prefix) && (!found || len(p.Prefix) > len(out.Prefix)) {
				out, found = p, true
			}
		}
		return out, found
	}
	group := ""
	for _, p := range pats {
		if p.Host == host {
			group = host
			break
		}
	}
	if group == "" {
		for _, p := range pats {
			if strings.HasPrefix(p.Host, "*.") && matchHost(p.Host, host) && len(p.Host) > len(group) {
				group = p.Host
			}
		}
	}
	if group != "" {
		if p, ok := best(group); ok {
			return p, true
		}
	}
	return best("")
}

// FuzzRouteMatch feeds arbitrary Host headers and request paths through the front door (Sanitize and the
// route table) and checks that a request it accepts reaches exactly the route the cleaned path and the
// canonical host select (compared with referenceRoute), that the chosen route's prefix contains the
// cleaned path, and that a strip_prefix app sees that path minus its prefix, never anything outside it.
func FuzzRouteMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"gw.test", "/api/x"}, {"ADMIN.example.com.:80", "/api/../public/x"}, {"eu.example.com", "/shop"},
		{"x.eu.example.com", "/shop/a"}, {"shop.example.com", "//shop//a/./b"}, {"", "/a/b/c/../c/d"},
		{"admin.example.com", "/api"}, {"[::1]:8080", "/api/v2"}, {"a.example.com", "/public\\..\\api\\v2"},
	} {
		f.Add(s[0], s[1])
	}
	var pats []Pattern
	var routes []Route
	var chosen Pattern
	var chosenPath string
	var hit bool
	for _, mp := range matchPatterns {
		p, err := ParsePattern(mp.pattern)
		if err != nil {
			f.Fatal(err)
		}
		pats = append(pats, p)
		routes = append(routes, Route{Pattern: p, StripPrefix: mp.strip, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			chosen, chosenPath, hit = p, r.URL.Path, true
		})})
	}
	h, err := New(Config{Routes: routes, Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chosen, chosenPath, hit = Pattern{}, r.URL.Path, true
	})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, host, path string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path, req.Host = path, host
		chosen, chosenPath, hit = Pattern{}, "", false
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !hit {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("host %q path %q: no app ran and the status is %d, not 400", host, path, w.Code)
			}
			return
		}
		clean, err := CleanPath(path)
		if err != nil {
			t.Fatalf("host %q path %q: an app ran although CleanPath refuses the path (%v)", host, path, err)
		}
		canon, err := CanonicalHost(host)
		if err != nil {
			t.Fatalf("host %q path %q: an app ran although CanonicalHost refuses the host (%v)", host, path, err)
		}
		want, ok := referenceRoute(pats, canon, clean)
		if chosen != want || !ok && chosen != (Pattern{}) {
			t.Fatalf("host %q path %q (clean %q): route %q chosen, want %q", canon, path, clean, chosen, want)
		}
		// A servlet container behind reads the path without ";parameters": it must select the same route.
		if lenient, _ := referenceRoute(pats, canon, stripParams(clean)); lenient != chosen {
			t.Fatalf("host %q path %q: route %q chosen, but without path parameters the path selects %q", canon, path, chosen, lenient)
		}
		if !ok {
			if chosenPath != clean {
				t.Fatalf("fallback saw %q, want the clean path %q", chosenPath, clean)
			}
			return
		}
		if !(want.Prefix == "/" || clean == want.Prefix || strings.HasPrefix(clean, want.Prefix+"/")) {
			t.Fatalf("route %q chosen for %q: its prefix does not contain the path", want, clean)
		}
		strip := false
		for _, mp := range matchPatterns {
			if p, _ := ParsePattern(mp.pattern); p == want {
				strip = mp.strip
			}
		}
		wantPath := clean
		if strip && want.Prefix != "/" {
			wantPath = strings.TrimPrefix(clean, want.Prefix)
			if wantPath == "" {
				wantPath = "/"
			}
		}
		if chosenPath != wantPath {
			t.Fatalf("route %q (strip %v) saw %q for %q, want %q", want, strip, chosenPath, clean, wantPath)
		}
	})
}
