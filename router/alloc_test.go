package router

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// allocsPerRequest runs f as testing.AllocsPerRun does, for a short and then a long run, and fails unless
// both give want: a count that grows with the run length would be memory kept per request. pooled says f
// relies on a sync.Pool, which the race detector empties at random: such counts are skipped under -race.
func allocsPerRequest(t *testing.T, want float64, pooled bool, f func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("allocation counts need the full runs")
	}
	if pooled && raceEnabled {
		t.Skip("the race detector drops sync.Pool items on purpose: counts are only meaningful without -race")
	}
	short, long := testing.AllocsPerRun(100, f), testing.AllocsPerRun(10000, f)
	if short != want || long != want {
		t.Fatalf("allocations per run = %v (100 runs), %v (10000 runs), want %v", short, long, want)
	}
}

func TestSteadyStateAllocations(t *testing.T) {
	table, err := NewTable(benchRoutes(t, nopHandler), nopHandler)
	if err != nil {
		t.Fatal(err)
	}
	route := func(host, path string) func() {
		r, w := httptest.NewRequest(http.MethodGet, path, nil), newNopWriter()
		r.Host = host
		return func() { w.reset(); table.ServeHTTP(w, r) }
	}
	front := Sanitize(SanitizeConfig{MaxBodySize: 1 << 20})(table)
	typical, tw := typicalRequest(), newNopWriter()
	long := "/a/./" + strings.Repeat("b", 300)
	tests := []struct {
		name   string
		want   float64
		pooled bool
		f      func()
	}{
		{"CleanPath of a clean path allocates nothing", 0, false, func() { _, _ = CleanPath(benchPaths["clean"]) }},
		{"CleanPath of a path with a dot-looking segment allocates nothing", 0, false, func() { _, _ = CleanPath("/.well-known/x..y/.z") }},
		{"CleanPath of a path to clean allocates only its result", 1, false, func() { _, _ = CleanPath(benchPaths["dirty"]) }},
		{"CleanPath of a path longer than the stack buffer allocates its buffer and result", 2, false, func() { _, _ = CleanPath(long) }},
		{"CanonicalHost of a lowercase host with port allocates nothing", 0, false, func() { _, _ = CanonicalHost("shop.example.com:8443") }},
		{"CanonicalHost of an IPv6 literal allocates nothing", 0, false, func() { _, _ = CanonicalHost("[::1]:8080") }},
		{"routing by prefix allocates nothing", 0, true, route("localhost:8080", "/api/users/7")},
		{"routing by the longest prefix allocates nothing", 0, true, route("localhost", "/api/v2/users/7")},
		{"routing by exact host allocates nothing", 0, true, route("admin.example.com", "/users")},
		{"routing by wildcard host in mixed case allocates nothing", 0, true, route("EU.Example.com.:443", "/shop/cart")},
		{"falling back allocates nothing", 0, true, route("localhost", "/about")},
		{"the front door and the table together allocate nothing for a typical request", 0, true, func() { tw.reset(); front.ServeHTTP(tw, typical) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { allocsPerRequest(t, tt.want, tt.pooled, tt.f) })
	}
}

// cleanPathReference is CleanPath as it was written first (split, filter, join), kept as the oracle of
// FuzzCleanPathMatchesReference for the allocation-free version.
func cleanPathReference(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' && p[0] != '\\' {
		return "", ErrBadPath
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x20 || c == 0x7f || c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			return "", ErrBadPath
		}
	}
	p = strings.ReplaceAll(p, "\\", "/")
	trailing := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	var out []string
	for _, s := range strings.Split(p, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	res := "/" + strings.Join(out, "/")
	if trailing && res != "/" {
		res += "/"
	}
	return res, nil
}

func FuzzCleanPathMatchesReference(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//x//y/", "/a\\..\\b", "/a/b/..", "/a/.", "/.well-known/x", "/..a/b..", "\\", "/a/" + strings.Repeat("x", 300) + "/../y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := CleanPath(p)
		want, werr := cleanPathReference(p)
		if got != want || (err == nil) != (werr == nil) {
			t.Fatalf("CleanPath(%q) = %q, %v; the reference gives %q, %v", p, got, err, want, werr)
		}
	})
}

func TestCanonicalHostReturnsTheLowercaseForm(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Shop.Example.COM.", "shop.example.com"},
		{"shop.example.com:8443", "shop.example.com"},
		{"[::1]:8080", "[::1]"},
		{"[FE80::1]", "[fe80::1]"},
		{"", ""},
	}
	for _, tt := range tests {
		if got, err := CanonicalHost(tt.in); err != nil || got != tt.want {
			t.Errorf("CanonicalHost(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzHostMatchingIgnoresCase checks the Table's allocation-free host matching (splitHost, then matchHost
// folding case) against matching the lowercase form CanonicalHost returns.
func FuzzHostMatchingIgnoresCase(f *testing.F) {
	for _, s := range []string{"Example.COM", "a.example.com.:80", "[::1]:8080", "EU.Example.com", "example.com", "x..example.com", "K.example.com"} {
		f.Add(s)
	}
	patterns := []string{"example.com", "*.example.com", "eu.example.com", "*.com", "[::1]"}
	f.Fuzz(func(t *testing.T, host string) {
		raw, _, err := splitHost(host)
		canon, cerr := CanonicalHost(host)
		if (err == nil) != (cerr == nil) {
			t.Fatalf("splitHost(%q) error %v, CanonicalHost error %v", host, err, cerr)
		}
		if err != nil {
			return
		}
		if strings.ToLower(raw) != canon {
			t.Fatalf("splitHost(%q) = %q, CanonicalHost = %q", host, raw, canon)
		}
		for _, p := range patterns {
			want := p == canon || strings.HasPrefix(p, "*.") && len(canon) > len(p)-1 && strings.HasSuffix(canon, p[1:])
			if got := matchHost(p, raw); got != want {
				t.Fatalf("matchHost(%q, %q) = %v, want %v (canonical %q)", p, raw, got, want, canon)
			}
		}
	})
}

func TestApplicationsNeverSeeAChiRouterOutsideTheTable(t *testing.T) {
	sawChi := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(name + " " + r.URL.Path))
			if chi.RouteContext(r.Context()) != nil {
				_, _ = w.Write([]byte(" (saw chi state)"))
			}
		})
	}
	table, err := NewTable([]Route{{Pattern: mustPattern(t, "/api/"), Handler: sawChi("api")}}, sawChi("fallback"))
	if err != nil {
		t.Fatal(err)
	}
	outer := chi.NewRouter()
	outer.Mount("/", table) // the gateway embedded in someone's chi router
	for _, tt := range []struct{ path, want string }{
		{"/api/x", "api /api/x"},
		{"/other", "fallback /other"},
	} {
		rec := httptest.NewRecorder()
		outer.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rec.Body.String() != tt.want {
			t.Errorf("GET %s = %q, want %q", tt.path, rec.Body.String(), tt.want)
		}
	}
}
