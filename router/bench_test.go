package router

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/go-chi/chi/v5"
)

// nopWriter is a ResponseWriter that keeps nothing, so a benchmark counts the router's allocations only.
// Its header map is cleared, not replaced, between requests.
type nopWriter struct {
	h    http.Header
	code int
}

func newNopWriter() *nopWriter                   { return &nopWriter{h: http.Header{}} }
func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(code int)        { w.code = code }
func (w *nopWriter) reset()                      { clear(w.h); w.code = 0 }

// nopHandler answers nothing (an implicit 200).
var nopHandler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// benchPaths are the CleanPath inputs of the benchmarks and allocation tests.
var benchPaths = map[string]string{
	"clean":       "/api/v1/users/7/orders",
	"dot-segment": "/static/css/../img/./logo.png",
	"dirty":       "//api\\v1//users/./7/../8/A x%/",
}

func BenchmarkCleanPath(b *testing.B) {
	for _, name := range []string{"clean", "dot-segment", "dirty"} {
		p := benchPaths[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CleanPath(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCanonicalHost(b *testing.B) {
	for _, tt := range []struct{ name, host string }{
		{"lowercase", "shop.example.com"},
		{"with-port", "shop.example.com:8443"},
		{"mixed-case", "Shop.Example.COM."},
		{"ipv6", "[::1]:8080"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := CanonicalHost(tt.host); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// typicalRequest is a browser's GET from an untrusted peer: a clean path, a lowercase Host with port, the
// usual headers and no forwarding headers.
func typicalRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/v1/users/7?expand=orders", nil)
	r.Host = "shop.example.com:8443"
	r.RemoteAddr = "203.0.113.9:53124"
	for k, v := range map[string]string{
		"User-Agent":      "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
		"Accept":          "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
		"Accept-Language": "en-GB,en;q=0.5",
		"Accept-Encoding": "gzip, deflate, br, zstd",
		"Cookie":          "session=0123456789abcdef; theme=dark",
		"Referer":         "https://shop.example.com/",
		"Sec-Fetch-Mode":  "navigate",
	} {
		r.Header.Set(k, v)
	}
	return r
}

func BenchmarkSanitize(b *testing.B) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	h := Sanitize(SanitizeConfig{TrustedProxies: trusted, MaxBodySize: 1 << 20})(nopHandler)
	b.Run("typical", func(b *testing.B) {
		r, w := typicalRequest(), newNopWriter()
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			h.ServeHTTP(w, r)
		}
	})
	b.Run("spoofed-forwarding-headers", func(b *testing.B) {
		// The headers Sanitize deletes are put back before each request, from slices made once.
		r, w := typicalRequest(), newNopWriter()
		xff, xfh, under := []string{"127.0.0.1"}, []string{"admin.internal"}, []string{"1.2.3.4"}
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			r.Header["X-Forwarded-For"], r.Header["X-Forwarded-Host"], r.Header["X_forwarded_for"] = xff, xfh, under
			h.ServeHTTP(w, r)
		}
	})
}

// benchRoutes is a route table of the size a gateway typically has: a few prefixes, a host, a wildcard.
func benchRoutes(b testing.TB, h http.Handler) []Route {
	var rs []Route
	for _, s := range []string{"/api/", "/api/v2/", "/admin/", "/static/", "/ws/", "admin.example.com/", "*.example.com/shop/"} {
		p, err := ParsePattern(s)
		if err != nil {
			b.Fatal(err)
		}
		rs = append(rs, Route{Pattern: p, Handler: h})
	}
	return rs
}

// BenchmarkTable routes through Table.ServeHTTP to a no-op handler. The chi sub-benchmarks measure chi's
// own cost for the same prefixes, mounted on a bare chi.Mux and served through its ServeHTTP, for
// comparison.
func BenchmarkTable(b *testing.B) {
	table, err := NewTable(benchRoutes(b, nopHandler), nopHandler)
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct{ name, host, path string }{
		{"prefix", "localhost:8080", "/api/users/7"},
		{"longer-prefix", "localhost:8080", "/api/v2/users/7"},
		{"exact-host", "admin.example.com", "/users"},
		{"wildcard-host", "eu.example.com", "/shop/cart"},
		{"fallback", "localhost:8080", "/about"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r, w := httptest.NewRequest(http.MethodGet, tt.path, nil), newNopWriter()
			r.Host = tt.host
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				table.ServeHTTP(w, r)
			}
		})
	}
	b.Run("prefix-stripped", func(b *testing.B) {
		// StripPrefix hands the app a copy of the request (r.Clone: URL, headers and the rest): its cost
		// is this sub-benchmark's beyond "prefix".
		routes := benchRoutes(b, nopHandler)
		routes[0].StripPrefix = true
		stripped, err := NewTable(routes, nopHandler)
		if err != nil {
			b.Fatal(err)
		}
		r, w := httptest.NewRequest(http.MethodGet, "/api/users/7", nil), newNopWriter()
		r.Host = "localhost:8080"
		b.ReportAllocs()
		for b.Loop() {
			w.reset()
			stripped.ServeHTTP(w, r)
		}
	})
	mux := chi.NewMux()
	for _, p := range []string{"/api", "/api/v2", "/admin", "/static", "/ws"} {
		mux.Mount(p, nopHandler)
	}
	mux.NotFound(nopHandler)
	for _, tt := range []struct{ name, path string }{
		{"chi-mux-prefix", "/api/users/7"},
		{"chi-mux-fallback", "/about"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r, w := httptest.NewRequest(http.MethodGet, tt.path, nil), newNopWriter()
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				mux.ServeHTTP(w, r)
			}
		})
	}
}
