package router

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// echoApp answers "<name> <path> <x-forwarded-prefix>" so tests see which app got what.
func echoApp(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", name, r.URL.Path, r.Header.Get("X-Forwarded-Prefix"))
	})
}

func mustPattern(t *testing.T, s string) Pattern {
	t.Helper()
	p, err := ParsePattern(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newTestRouter(t *testing.T) *httptest.Server {
	t.Helper()
	routes := []Route{
		{Pattern: mustPattern(t, "/api/"), Handler: echoApp("api"), StripPrefix: true},
		{Pattern: mustPattern(t, "/api/v2/"), Handler: echoApp("api-v2")},
		{Pattern: mustPattern(t, "/admin/"), Handler: echoApp("admin")},
		{Pattern: mustPattern(t, "/public/"), Handler: echoApp("public")},
		{Pattern: mustPattern(t, "admin.example.com/"), Handler: echoApp("admin-host")},
		{Pattern: mustPattern(t, "*.example.com/shop/"), Handler: echoApp("shop-any")},
		{Pattern: mustPattern(t, "eu.example.com/shop/"), Handler: echoApp("shop-eu")},
	}
	h, err := New(Config{Routes: routes, Fallback: echoApp("primary")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// rawGet sends a request line byte for byte, so no client library cleans the path first.
func rawGet(t *testing.T, addr, target, host string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestRouting(t *testing.T) {
	srv := newTestRouter(t)
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name, target, host string
		status             int
		want               string
	}{
		{"a prefix route gets its path stripped and learns its mount", "/api/users?x=1", "localhost", 200, "api /users /api"},
		{"the bare prefix matches the route", "/api", "localhost", 200, "api / /api"},
		{"a longer prefix wins over a shorter one", "/api/v2/items", "localhost", 200, "api-v2 /api/v2/items "},
		{"a prefix never matches a longer segment", "/apix", "localhost", 200, "primary /apix "},
		{"unclaimed paths fall back to the primary", "/anything", "localhost", 200, "primary /anything "},
		{"dot segments cannot climb out of a route", "/public/../admin/x", "localhost", 200, "admin /admin/x "},
		{"duplicate slashes are collapsed before matching", "//admin//x", "localhost", 200, "admin /admin/x "},
		{"an encoded slash is refused", "/api%2F..%2Fadmin", "localhost", 400, "400 bad request path"},
		{"encoded dots are refused", "/public/%2e%2e/admin", "localhost", 400, "400 bad request path"},
		{"double-encoded dots are refused", "/public/%252e%252e/admin", "localhost", 400, "400 bad request path"},
		{"an encoded NUL is refused", "/uploads/evil.jpg%00.php", "localhost", 400, "400 bad request path"},
		{"backslashes are separators", "/public\\..\\admin", "localhost", 200, "admin /admin "},
		{"dot segments above the root stay at the root", "/../../admin", "localhost", 200, "admin /admin "},
		{"an exact host route wins", "/x", "admin.example.com", 200, "admin-host /x "},
		{"host matching ignores case, port and trailing dot", "/x", "ADMIN.Example.com.:8080", 200, "admin-host /x "},
		{"an exact host beats a wildcard", "/shop/a", "eu.example.com", 200, "shop-eu /shop/a "},
		{"a wildcard host matches any subdomain", "/shop/a", "us.example.com", 200, "shop-any /shop/a "},
		{"a wildcard host does not match the bare domain", "/shop/a", "example.com", 200, "primary /shop/a "},
		{"a host's unmatched paths continue with host-less routes", "/admin/y", "us.example.com", 200, "admin /admin/y "},
		{"an invalid Host is refused", "/", "bad host", 400, "400 Bad Request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawGet(t, addr, tt.target, tt.host)
			if status != tt.status || body != strings.TrimSpace(tt.want) && !strings.HasPrefix(body, tt.want) {
				t.Fatalf("GET %s (Host %s) = %d %q, want %d %q", tt.target, tt.host, status, body, tt.status, tt.want)
			}
		})
	}
}

func TestParsePatternErrors(t *testing.T) {
	for _, bad := range []string{"", "/api/{id}/", "/a/*", "/a/../b/", "//a/", "bad host/", "/a%2f/", "*x.com/", "..", "a..b/", ".example.com/", "-a.com/"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("ParsePattern(%q) succeeded, want an error", bad)
		}
	}
}

func TestDuplicateRouteIsAnError(t *testing.T) {
	p := mustPattern(t, "/a/")
	_, err := New(Config{Routes: []Route{{Pattern: p, Handler: echoApp("1")}, {Pattern: mustPattern(t, "/a"), Handler: echoApp("2")}}})
	if err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("err = %v, want a duplicate-route error", err)
	}
}

func headerEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"X-Forwarded-For", "X-Real-Ip", "Forwarded", "X-Forwarded-Prefix", "X_Forwarded_For", "Upgrade", "Http2-Settings"} {
			fmt.Fprintf(w, "%s=%s\n", h, r.Header.Get(h))
		}
	})
}

func TestForwardingHeadersFromUntrustedPeersAreDropped(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"an untrusted peer's forwarding headers are removed", nil, "X-Forwarded-For=\n"},
		{"a trusted peer's forwarding headers are kept", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "X-Forwarded-For=203.0.113.9\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := New(Config{Fallback: headerEcho(), TrustedProxies: tc.trusted})
			srv := httptest.NewServer(h)
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("X-Real-IP", "203.0.113.9")
			req.Header["X_Forwarded_For"] = []string{"203.0.113.9"}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), tc.want) || !strings.Contains(string(b), "X_Forwarded_For=\n") {
				t.Fatalf("app saw:\n%s\nwant %q and no underscore header", b, tc.want)
			}
		})
	}
}

func TestOnlyWebSocketUpgradesPass(t *testing.T) {
	h, _ := New(Config{Fallback: headerEcho()})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct{ up, want string }{{"websocket", "Upgrade=websocket"}, {"h2c", "Upgrade=\n"}} {
		req, _ := http.NewRequest("GET", srv.URL+"/", nil)
		req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
		req.Header.Set("Upgrade", tc.up)
		req.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), tc.want) || !strings.Contains(string(b), "Http2-Settings=\n") {
			t.Errorf("Upgrade %s: app saw\n%s\nwant %q", tc.up, b, tc.want)
		}
	}
}

func TestDeclaredOversizedBodyGets413BeforeTheApp(t *testing.T) {
	called := false
	h, _ := New(Config{MaxBodySize: 10, Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called = true })})
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/", "text/plain", strings.NewReader(strings.Repeat("x", 11)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || called {
		t.Fatalf("status %d, app called %v; want 413 without calling the app", resp.StatusCode, called)
	}
}

func TestChunkedRequestsCloseTheConnection(t *testing.T) {
	h, _ := New(Config{Fallback: echoApp("p")})
	srv := httptest.NewServer(h)
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A CL.TE smuggling attempt: a CL-parsing front end would see one request, Go sees the chunked body
	// and then a second request. The gateway must close instead of reading the second one.
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if !resp.Close {
		t.Fatalf("response to a chunked request does not close the connection")
	}
	if second, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("the smuggled request was answered: %d", second.StatusCode)
	}
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//x//y/", "/a\\..\\b", "/%2e", "/a/./b/.", "/..", "/a%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := CleanPath(p)
		if err != nil {
			return
		}
		if c == "" || c[0] != '/' || strings.Contains(c, "//") || strings.Contains(c, "\\") {
			t.Fatalf("CleanPath(%q) = %q: not canonical", p, c)
		}
		for _, seg := range strings.Split(c, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("CleanPath(%q) = %q keeps a dot segment", p, c)
			}
		}
		if again, err := CleanPath(c); err != nil || again != c {
			t.Fatalf("CleanPath not idempotent: %q -> %q -> %q (%v)", p, c, again, err)
		}
	})
}

func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{"/api/", "admin.example.com/", "*.example.com/x/", "a.b:80/", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePattern(s)
		if err != nil {
			return
		}
		again, err := ParsePattern(p.String())
		if err != nil || again != p {
			t.Fatalf("pattern %q -> %q does not round-trip (%v)", s, p.String(), err)
		}
		// A parsed pattern must always be buildable.
		if _, err := NewTable([]Route{{Pattern: p, Handler: http.NotFoundHandler()}}, nil); err != nil {
			t.Fatalf("pattern %q parsed but does not build: %v", s, err)
		}
	})
}
