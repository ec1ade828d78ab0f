package router

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// rawApp answers "<name> <path> <escaped path>" so tests see what an app gets, escapes included.
func rawApp(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s", name, r.URL.Path, r.URL.EscapedPath())
	})
}

func TestPathParametersCannotPassAProtectedPrefix(t *testing.T) {
	h, err := New(Config{Routes: []Route{
		{Pattern: mustPattern(t, "/admin/"), Handler: rawApp("admin")},
		{Pattern: mustPattern(t, "/shop/"), Handler: rawApp("shop")},
		{Pattern: mustPattern(t, "/shop/admin/"), Handler: rawApp("shop-admin")},
		{Pattern: mustPattern(t, "admin.example.com/private/"), Handler: rawApp("host-private")},
	}, Fallback: rawApp("fallback")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name, target, host string
		status             int
		want               string
	}{
		{"a parameter on the protected segment is refused (Tomcat reads /admin/secret)", "/admin;x=1/secret", "gw.test", 400, "400 ambiguous request path"},
		{"a parameter on the protected segment alone is refused", "/admin;x=1", "gw.test", 400, "400 ambiguous request path"},
		{"a parameter that would reach a longer route is refused", "/shop/admin;a/users", "gw.test", 400, "400 ambiguous request path"},
		{"a parameter under a host route is refused", "/private;x/y", "admin.example.com", 400, "400 ambiguous request path"},
		{"a parameter inside the route it reaches anyway passes unchanged", "/admin/secret;x=1", "gw.test", 200, "admin /admin/secret;x=1 /admin/secret;x=1"},
		{"servlet session rewriting passes", "/shop/cart;jsessionid=AB12", "gw.test", 200, "shop /shop/cart;jsessionid=AB12 /shop/cart;jsessionid=AB12"},
		{"a parameter that changes no route passes to the fallback", "/blog;v=2/post", "gw.test", 200, "fallback /blog;v=2/post /blog;v=2/post"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawGet(t, addr, tt.target, tt.host)
			if status != tt.status || body != tt.want {
				t.Fatalf("GET %s: %d %q, want %d %q", tt.target, status, body, tt.status, tt.want)
			}
		})
	}
}

func TestEncodedSlashReachesOnlyTheRoutesThatTakeIt(t *testing.T) {
	h, err := New(Config{Routes: []Route{
		{Pattern: mustPattern(t, "/api/"), Handler: rawApp("api"), EncodedSlash: true},
		{Pattern: mustPattern(t, "/api/admin/"), Handler: rawApp("api-admin")},
		{Pattern: mustPattern(t, "/v4/"), Handler: rawApp("v4"), EncodedSlash: true, StripPrefix: true},
		{Pattern: mustPattern(t, "/other/"), Handler: rawApp("other")},
	}, Fallback: rawApp("fallback")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	tests := []struct {
		name, target string
		status       int
		want         string
	}{
		{"an encoded slash is forwarded unchanged to a route that takes it", "/api/projects/group%2Fproj/issues", 200, "api /api/projects/group/proj/issues /api/projects/group%2Fproj/issues"},
		{"a lower-case one too, in canonical form", "/api/projects/group%2fproj", 200, "api /api/projects/group/proj /api/projects/group%2Fproj"},
		{"other escapes around it keep their meaning", "/api/k/caf%C3%A9%2Fa%20b", 200, "api /api/k/café/a b /api/k/caf%C3%A9%2Fa%20b"},
		{"strip_prefix keeps it below the prefix", "/v4/projects/a%2Fb", 200, "v4 /projects/a/b /projects/a%2Fb"},
		{"it is never a separator: a nested protected route is not reached by decoding", "/api/admin%2Fsecret", 400, "400 ambiguous request path"},
		{"a route that does not take it refuses it", "/other/a%2Fb", 400, "400 ambiguous request path"},
		{"the fallback never takes it", "/x/a%2Fb", 400, "400 ambiguous request path"},
		{"inside a route prefix it makes another segment: refused", "/api%2Fprojects", 400, "400 ambiguous request path"},
		{"dot segments made of encoded slashes are refused", "/api/a%2F..%2F..%2Fadmin", 400, "400 bad request path"},
		{"empty segments made of encoded slashes are refused", "/api/a%2F%2Fb", 400, "400 bad request path"},
		{"a double-encoded slash is refused", "/api/a%252Fb", 400, "400 bad request path"},
		{"the other refused encodings stay refused", "/api/a%2e%2e", 400, "400 bad request path"},
		{"paths without it are unchanged", "/api/a/b", 200, "api /api/a/b /api/a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := rawGet(t, addr, tt.target, "gw.test")
			if status != tt.status || body != tt.want {
				t.Fatalf("GET %s: %d %q, want %d %q", tt.target, status, body, tt.status, tt.want)
			}
		})
	}
}

// Without a route that takes it, an encoded slash is refused at the front door, as before.
func TestEncodedSlashIsRefusedWhenNoRouteTakesIt(t *testing.T) {
	srv := newTestRouter(t)
	if status, body := rawGet(t, srv.Listener.Addr().String(), "/api/a%2Fb", "gw.test"); status != 400 || body != "400 bad request path" {
		t.Fatalf("%d %q", status, body)
	}
}

// The Table alone (behind someone else's sanitising) refuses an encoded slash for routes without the
// option too: RawPath with %2F never reaches them.
func TestTableAloneRefusesEncodedSlash(t *testing.T) {
	table, err := NewTable([]Route{{Pattern: mustPattern(t, "/api/"), Handler: rawApp("api")}}, rawApp("fallback"))
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/api/a%2Fb", nil)
	w := httptest.NewRecorder()
	table.ServeHTTP(w, r)
	if w.Code != 400 {
		t.Fatalf("status %d, body %q", w.Code, w.Body.String())
	}
}

// docsRefused reads the refused encodings from docs/paths.md: the first column of the table after the
// "refused-encodings" marker, as single codes (`%2E`) and ranges (`%00`-`%1F`).
func docsRefused(t *testing.T) (codes map[byte]bool, doubleEncoding bool) {
	t.Helper()
	b, err := os.ReadFile("../docs/paths.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "<!-- refused-encodings")
	if i < 0 {
		t.Fatal("docs/paths.md has no refused-encodings marker")
	}
	codes = map[byte]bool{}
	code := regexp.MustCompile("`%([0-9A-F]{2})`(?:-`%([0-9A-F]{2})`)?")
	rows := 0
	for _, line := range strings.Split(doc[i:], "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			if rows > 0 {
				break
			}
			continue
		}
		rows++
		cells := strings.Split(line, "|")
		if len(cells) < 3 || strings.HasPrefix(cells[1], "---") || strings.TrimSpace(cells[1]) == "encoding" {
			continue
		}
		if strings.Contains(cells[1], "%25") {
			doubleEncoding = true
			continue
		}
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			lo, _ := strconv.ParseUint(m[1], 16, 8)
			hi := lo
			if m[2] != "" {
				hi, _ = strconv.ParseUint(m[2], 16, 8)
			}
			for c := lo; c <= hi; c++ {
				codes[byte(c)] = true
			}
		}
	}
	if len(codes) == 0 {
		t.Fatal("no refused encodings found in docs/paths.md")
	}
	return codes, doubleEncoding
}

// TestDocumentedRefusedEncodingsAreWhatTheCodeRefuses sends every one-byte escape, in both cases of hex
// digits, through the front door and compares what is refused with the list in docs/paths.md; then the
// double encodings the page names.
func TestDocumentedRefusedEncodingsAreWhatTheCodeRefuses(t *testing.T) {
	documented, double := docsRefused(t)
	h, err := New(Config{Fallback: rawApp("app")})
	if err != nil {
		t.Fatal(err)
	}
	status := func(target string) int {
		w := httptest.NewRecorder()
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: gw.test\r\n\r\n")))
		if err != nil {
			return 400 // net/http itself refuses it
		}
		h.ServeHTTP(w, r)
		return w.Code
	}
	for c := 0; c < 256; c++ {
		if c == '%' {
			continue // the double-encoding row
		}
		for _, esc := range []string{fmt.Sprintf("%%%02X", c), fmt.Sprintf("%%%02x", c)} {
			refused := status("/a"+esc+"b") == 400
			if refused != documented[byte(c)] {
				t.Errorf("%s: refused %v, docs/paths.md says %v", esc, refused, documented[byte(c)])
			}
		}
	}
	if !double {
		t.Fatal("docs/paths.md does not list %25 (double encoding)")
	}
	for _, target := range []string{"/%2561dmin/secret", "/a%252Fb", "/a%252e%252e/b", "/a%25%32%46b", "/a%25%32fb", "/a%2500"} {
		if s := status(target); s != 400 {
			t.Errorf("double encoding %s: status %d, want 400", target, s)
		}
	}
	for _, target := range []string{"/100%25", "/a%25zz", "/caf%C3%A9"} {
		if s := status(target); s != 200 {
			t.Errorf("%s: status %d, want 200", target, s)
		}
	}
}

// FuzzRawRequestTarget sends arbitrary request-targets, parsed by net/http as a server would, through the
// front door of a table with a protected prefix, nested routes and a route that takes encoded slashes.
// Whenever an app runs, every way a server behind could read the path (decoded once and cleaned,
// without ";parameters", with "%2F" as a separator) selects the route that ran, and only a route with
// EncodedSlash ever sees an escaped path.
func FuzzRawRequestTarget(f *testing.F) {
	for _, s := range []string{"/admin;x=1/secret", "/%2561dmin/secret", "/api/g%2Fp", "/api/admin%2Fx", "/shop/cart;jsessionid=1",
		"/a%5Cb", "/api/a%2F..%2Fb", "/100%25", "/x/%c3%a9;a/b", "/api;v=1/admin/x", "http://h/admin;/x"} {
		f.Add(s)
	}
	names := []string{"/admin/", "/api/", "/api/admin/", "/shop/", "/shop/admin/"}
	var routes []Route
	var pats []Pattern
	var ran *Route
	var sawRaw string
	for i, n := range names {
		p, err := ParsePattern(n)
		if err != nil {
			f.Fatal(err)
		}
		pats = append(pats, p)
		routes = append(routes, Route{Pattern: p, EncodedSlash: n == "/api/"})
		i := i
		routes[i].Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran, sawRaw = &routes[i], r.URL.RawPath })
	}
	fallback := Route{}
	h, err := New(Config{Routes: routes, Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran, sawRaw = &fallback, r.URL.RawPath })})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader("GET " + target + " HTTP/1.1\r\nHost: gw.test\r\n\r\n")))
		if err != nil {
			return
		}
		ran, sawRaw = nil, ""
		h.ServeHTTP(httptest.NewRecorder(), r)
		if ran == nil {
			return
		}
		if sawRaw != "" && !ran.EncodedSlash {
			t.Fatalf("%q: route %q without EncodedSlash saw the escaped path %q", target, ran.Pattern, sawRaw)
		}
		// What the route ran with: its pattern, or the fallback's zero Pattern.
		got := ran.Pattern
		path := r.URL.Path // the decoded path the app got (Sanitize cleaned it in place)
		for _, reading := range []string{path, stripParams(path)} {
			clean, err := CleanPath(reading)
			if err != nil {
				continue
			}
			want, _ := referenceRoute(pats, "gw.test", clean)
			if want != got {
				t.Fatalf("%q: ran %q, but read as %q it selects %q", target, got, clean, want)
			}
		}
	})
}
