package adversarial

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/switchyard/switchyard/router"
)

// routedGateway is a gateway with a primary app (fallback), an app mounted under /public/ with
// strip_prefix, one under /files/ without it, one under /admin/ and one for the host admin.example.com.
type routedGateway struct {
	addr                                    string
	stop                                    func()
	primary, public, files, admin, adminHst *recorder
}

func startRouted(t *testing.T) *routedGateway {
	t.Helper()
	g := &routedGateway{
		primary: newRecorder(t, "primary"), public: newRecorder(t, "public"), files: newRecorder(t, "files"),
		admin: newRecorder(t, "admin"), adminHst: newRecorder(t, "admin-host"),
	}
	g.addr, g.stop = startGateway(t, map[string]string{
		"GATEWAY_PRIMARY": g.primary.URL(),
		"GATEWAY_ROUTES": "/public/=" + g.public.URL() + "?strip_prefix=true,/files/=" + g.files.URL() +
			",/admin/=" + g.admin.URL() + ",admin.example.com/=" + g.adminHst.URL(),
	})
	return g
}

// get sends one GET with the request-target and Host written byte for byte and returns the status and,
// for 200, the answering backend's "<app> saw GET <target> host=<host>" line.
func get(t *testing.T, addr, target, hostHeader string) (int, string) {
	t.Helper()
	raw := "GET " + target + " HTTP/1.1\r\n"
	if hostHeader != "" {
		raw += "Host: " + hostHeader + "\r\n"
	}
	rs, _ := exchange(t, addr, raw+"Connection: close\r\n\r\n", 1)
	if len(rs) != 1 {
		t.Fatalf("GET %q: no response", target)
	}
	return rs[0].Status, strings.TrimSpace(rs[0].Body)
}

func TestRoutingIntegrity(t *testing.T) {
	g := startRouted(t)
	for _, tc := range []struct {
		name, target, host string
		status             int
		want               string // the backend's line for 200
	}{
		{"dot segments are resolved before routing: /public/../admin reaches admin, not public", "/public/../admin/x", "gw.test", 200, "admin saw GET /admin/x host=gw.test"},
		{"dot segments never climb out of a strip_prefix mount: /public/a/../b stays inside", "/public/a/../b", "gw.test", 200, "public saw GET /b host=gw.test"},
		{"a path climbing above the root is clamped at the root", "/public/../../../admin/x", "gw.test", 200, "admin saw GET /admin/x host=gw.test"},
		{"a no-strip mount sees only paths under its prefix", "/files/a/../../files/b", "gw.test", 200, "files saw GET /files/b host=gw.test"},
		{"a no-strip mount never gets what its path climbs out to", "/files/../x", "gw.test", 200, "primary saw GET /x host=gw.test"},
		{"encoded dot segments (%2e%2e) are refused", "/public/%2e%2e/admin/x", "gw.test", 400, ""},
		{"upper-case encoded dot segments (%2E%2E) are refused", "/public/%2E%2E/admin/x", "gw.test", 400, ""},
		{"one encoded dot of a dot segment (.%2e) is refused", "/public/.%2e/admin/x", "gw.test", 400, ""},
		{"double-encoded dot segments (%252e%252e, decoded twice by some apps) are refused", "/public/%252e%252e/admin/x", "gw.test", 400, ""},
		{"an encoded slash (%2f) is refused", "/public/..%2fadmin/x", "gw.test", 400, ""},
		{"an encoded upper-case slash (%2F) in the mount name is refused", "/public%2F..%2Fadmin", "gw.test", 400, ""},
		{"an encoded backslash (%5c) is refused", "/public/..%5cadmin/x", "gw.test", 400, ""},
		{"a raw backslash is a separator: /public\\..\\admin reaches admin", "/public\\..\\admin\\x", "gw.test", 200, "admin saw GET /admin/x host=gw.test"},
		{"duplicate slashes are collapsed: //admin//x reaches admin", "//admin//x", "gw.test", 200, "admin saw GET /admin/x host=gw.test"},
		{"duplicate slashes around a dot segment are collapsed", "/public//..//admin/x", "gw.test", 200, "admin saw GET /admin/x host=gw.test"},
		{"Tomcat path-parameter traversal /..;/ is refused (Orange Tsai, Breaking Parser Logic, 2018)", "/public/..;/admin/x", "gw.test", 400, ""},
		{"Tomcat path-parameter traversal with an encoded ; (..%3b) is refused", "/public/..%3b/admin/x", "gw.test", 400, ""},
		{"a parameter on the dot segment itself (/.;x/) is refused", "/public/.;x/x", "gw.test", 400, ""},
		{"an empty segment with parameters (/;/) is refused", "/;/admin/x", "gw.test", 400, ""},
		{"an ordinary path parameter (jsessionid) is passed unchanged", "/public/cart;jsessionid=1", "gw.test", 200, "public saw GET /cart;jsessionid=1 host=gw.test"},
		{"a session parameter on a directory URL (/;jsessionid=) is passed unchanged", "/public/;jsessionid=1", "gw.test", 200, "public saw GET /;jsessionid=1 host=gw.test"},
		{"a path parameter on a mount's segment is refused: /admin;x=1/secret is /admin/secret to Tomcat and Spring", "/admin;x=1/secret", "gw.test", 400, ""},
		{"a path parameter on the mount point alone is refused", "/admin;x=1", "gw.test", 400, ""},
		{"a path parameter on a strip_prefix mount's segment is refused", "/public;a=b/x", "gw.test", 400, ""},
		{"a path parameter inside the mount it reaches anyway passes unchanged", "/admin/x;y=1", "gw.test", 200, "admin saw GET /admin/x;y=1 host=gw.test"},
		{"double encoding of a letter (%2561 is %61 is a: /admin to apps that decode twice) is refused", "/%2561dmin/secret", "gw.test", 400, ""},
		{"double encoding with encoded hex digits (%25%36%31) is refused", "/%25%36%31dmin/secret", "gw.test", 400, ""},
		{"a double-encoded slash (%252F) is refused", "/public/..%252Fadmin/x", "gw.test", 400, ""},
		{"an upper-case encoded backslash (%5C, which leaves Go's RawPath empty) is refused", "/public/..%5Cadmin/x", "gw.test", 400, ""},
		{"an encoded NUL (%00) is refused: NUL truncation (evil.jpg%00.php)", "/public/evil.jpg%00.php", "gw.test", 400, ""},
		{"an encoded line feed in PATH_INFO is refused (CVE-2019-11043 PHP-FPM path_info)", "/public/index.php/PHP%0Ais_the_shittiest_lang.php", "gw.test", 400, ""},
		{"an encoded percent (%25) that encodes nothing further passes as a literal %", "/public/%25", "gw.test", 200, "public saw GET /%25 host=gw.test"},
		{"overlong UTF-8 dots (%c0%ae) are refused (IIS Unicode traversal, CVE-2000-0884)", "/public/%c0%ae%c0%ae/admin/x", "gw.test", 400, ""},
		{"an overlong UTF-8 slash (%c0%af) is refused", "/public/..%c0%afadmin/x", "gw.test", 400, ""},
		{"invalid UTF-8 (%ff) is refused", "/public/%ff", "gw.test", 400, ""},
		{"fullwidth full stops (U+FF0E) that NFKC folds to .. are refused", "/public/%ef%bc%8e%ef%bc%8e/admin/x", "gw.test", 400, ""},
		{"a fullwidth solidus (U+FF0F) that NFKC folds to / is refused", "/public/..%ef%bc%8fadmin/x", "gw.test", 400, ""},
		{"a two dot leader (U+2025) that NFKC folds to .. is refused", "/public/%e2%80%a5/admin/x", "gw.test", 400, ""},
		{"ordinary UTF-8 passes unchanged", "/public/caf%C3%A9", "gw.test", 200, "public saw GET /caf%C3%A9 host=gw.test"},
		{"routes are case-sensitive: /ADMIN/ is not /admin/", "/ADMIN/x", "gw.test", 200, "primary saw GET /ADMIN/x host=gw.test"},
		{"a prefix matches whole segments only: /publicity is not /public/", "/publicity", "gw.test", 200, "primary saw GET /publicity host=gw.test"},
		{"the mount point itself without a slash is inside the mount", "/public", "gw.test", 200, "public saw GET / host=gw.test"},
		{"a query is not a path: ../ in it changes nothing", "/public/x?next=../../admin", "gw.test", 200, "public saw GET /x?next=../../admin host=gw.test"},
		{"a request-target without a leading slash is refused", "public/x", "gw.test", 400, ""},
		{"asterisk-form outside OPTIONS is refused", "*", "gw.test", 400, ""},
		{"the Host is matched case-insensitively, without port and trailing dot", "/x", "ADMIN.Example.COM.:8080", 200, "admin-host saw GET /x host=ADMIN.Example.COM.:8080"},
		{"a Host with a path is refused", "/x", "admin.example.com/x", 400, ""},
		{"a Host with userinfo is refused", "/x", "evil@admin.example.com", 400, ""},
		{"a Host list is refused", "/x", "gw.test, admin.example.com", 400, ""},
		{"a Host with a non-numeric port is refused", "/x", "admin.example.com:80x", 400, ""},
		{"absolute-form: the target's host routes, and the app sees that same host", "http://admin.example.com/x", "gw.test", 200, "admin-host saw GET /x host=admin.example.com"},
		{"absolute-form: the target's host wins over an admin Host header", "http://gw.test/x", "admin.example.com", 200, "primary saw GET /x host=gw.test"},
		{"absolute-form: dot segments in the target are resolved too", "http://gw.test/public/../admin/x", "gw.test", 200, "admin saw GET /admin/x host=gw.test"},
		{"absolute-form: an https target is forwarded as the same request", "https://admin.example.com/x", "gw.test", 200, "admin-host saw GET /x host=admin.example.com"},
		{"absolute-form: userinfo in the target does not change the host", "http://evil@admin.example.com/x", "gw.test", 200, "admin-host saw GET /x host=admin.example.com"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, line := get(t, g.addr, tc.target, tc.host)
			if status != tc.status || tc.status == 200 && line != tc.want {
				t.Errorf("GET %q Host %q: %d %q, want %d %q", tc.target, tc.host, status, line, tc.status, tc.want)
			}
		})
	}
	g.stop()
	checkMounts(t, g)
}

// checkMounts asserts, over everything the mounted apps received, that the no-strip app only ever saw
// paths under /files/ and the strip_prefix app always got its mount point in X-Forwarded-Prefix.
func checkMounts(t *testing.T, g *routedGateway) {
	t.Helper()
	files, _ := g.files.record()
	for _, r := range files {
		if r.Target != "/files" && !strings.HasPrefix(r.Target, "/files/") {
			t.Errorf("the /files/ app saw %q, outside its mount", r.Target)
		}
	}
	public, _ := g.public.record()
	for _, r := range public {
		if got := r.Header.Values("X-Forwarded-Prefix"); len(got) != 1 || got[0] != "/public" {
			t.Errorf("the /public/ app got X-Forwarded-Prefix %q for %s", got, r.Target)
		}
		if !strings.HasPrefix(r.Target, "/") {
			t.Errorf("the /public/ app saw %q", r.Target)
		}
	}
}

// TestRandomTrickPathsRouteLikeTheirCleanForm builds request targets from the tricky pieces above at
// random (fixed seed, so a failure reproduces) and checks every answer against a reference: a request the
// gateway accepts must reach the app that path.Clean of the once-decoded path selects, and the mounted
// apps must see paths inside their mounts.
func TestRandomTrickPathsRouteLikeTheirCleanForm(t *testing.T) {
	g := startRouted(t)
	pieces := []string{"public", "files", "admin", "x", ".", "..", "%2e", "%2E%2e", "%2f", "%5c", "\\", "", ";", "..;",
		"%3b", "%00", "%0a", "%25", "%c0%ae", "%ef%bc%8e", "caf%c3%a9", "PUBLIC", "publicity", "~", "%7e"}
	rng := rand.New(rand.NewPCG(8, 2026))
	c := &keepAliveClient{t: t, addr: g.addr}
	defer c.close()
	for i := 0; i < 400; i++ {
		n := 1 + rng.IntN(6)
		segs := make([]string, n)
		for j := range segs {
			segs[j] = pieces[rng.IntN(len(pieces))]
		}
		target := "/" + strings.Join(segs, "/")
		status, line := c.get(target)
		if status == 400 {
			continue
		}
		if status != 200 {
			t.Errorf("GET %q: status %d", target, status)
			continue
		}
		dec, err := url.PathUnescape(target)
		if err != nil {
			t.Errorf("GET %q: accepted, but the target does not decode: %v", target, err)
			continue
		}
		ref := path.Clean(strings.ReplaceAll(dec, "\\", "/"))
		want := "primary"
		for _, m := range []string{"public", "files", "admin"} {
			if ref == "/"+m || strings.HasPrefix(ref, "/"+m+"/") {
				want = m
			}
		}
		app, _, _ := strings.Cut(line, " ")
		if app != want {
			t.Errorf("GET %q (clean %q) reached %q, want %q", target, ref, line, want)
		}
	}
	g.stop()
	checkMounts(t, g)
}

// keepAliveClient sends GETs one after another on one connection, reconnecting when the gateway closes it.
type keepAliveClient struct {
	t    *testing.T
	addr string
	c    net.Conn
	br   *bufio.Reader
}

func (k *keepAliveClient) get(target string) (int, string) {
	k.t.Helper()
	for attempt := 0; attempt < 2; attempt++ {
		if k.c == nil {
			c, err := net.Dial("tcp", k.addr)
			if err != nil {
				k.t.Fatal(err)
			}
			k.c, k.br = c, bufio.NewReader(c)
		}
		k.c.SetDeadline(time.Now().Add(ioTimeout))
		if _, err := fmt.Fprintf(k.c, "GET %s HTTP/1.1\r\n%s\r\n", target, host); err == nil {
			if rs, _ := readReplies(k.t, k.c, k.br, 1); len(rs) == 1 {
				if rs[0].Close {
					k.close()
				}
				return rs[0].Status, strings.TrimSpace(rs[0].Body)
			}
		}
		k.close()
	}
	k.t.Fatalf("GET %q: no response", target)
	return 0, ""
}

func (k *keepAliveClient) close() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// TestEveryRuneNFKCFoldsIntoASeparatorIsRefused walks all of Unicode: every rune whose NFKC form
// (golang.org/x/text/unicode/norm) contains '.', '/' or '\\' must make the front door refuse the path, so
// an app that normalises Unicode can never find a dot segment or separator the router did not see.
func TestEveryRuneNFKCFoldsIntoASeparatorIsRefused(t *testing.T) {
	h, err := router.New(router.Config{Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})})
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		if !strings.ContainsAny(norm.NFKC.String(s), "./\\") {
			continue
		}
		found++
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = "/public/" + s + "/x"
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusBadRequest {
			t.Errorf("U+%04X %q (NFKC %q): status %d, want 400", r, s, norm.NFKC.String(s), w.Code)
		}
	}
	if found == 0 {
		t.Fatal("no rune folds into a separator: the check itself is broken")
	}
}

// TestEncodedSlashRoutes: with encoded_slash on one route, "%2F" reaches that route's apps unchanged
// (HTTP: in the request-target; FastCGI: in REQUEST_URI, with the decoded path in DOCUMENT_URI and
// PATH_INFO), and never a protected route, another route or the primary.
func TestEncodedSlashRoutes(t *testing.T) {
	api, primary := newRecorder(t, "api"), newRecorder(t, "primary")
	app := newFCGIApp(t)
	addr, stop := startGateway(t, map[string]string{
		"GATEWAY_PRIMARY": primary.URL(),
		"GATEWAY_ROUTES": "/api/=" + api.URL() + "?encoded_slash=true,/api/admin/=status:403,/php/=fastcgi://" + app.ln.Addr().String() +
			"?encoded_slash=true,/php/private/=status:403,/files/=" + primary.URL(),
	})
	defer stop()
	for _, tc := range []struct {
		name, target string
		status       int
		want         string
	}{
		{"an HTTP app gets %2F as sent (GitLab project paths)", "/api/v4/projects/group%2Fproject/issues", 200, "api saw GET /api/v4/projects/group%2Fproject/issues host=gw.test"},
		{"%2F is never a separator: it cannot reach a protected route nested in the one that takes it", "/api/admin%2Fsecret", 400, ""},
		{"nor climb out of the route", "/api/x%2F..%2F..%2Fadmin/secret", 400, ""},
		{"a route without the option refuses it", "/files/a%2Fb", 400, ""},
		{"the primary never gets it", "/other/a%2Fb", 400, ""},
		{"in the route's own prefix it is another segment: refused", "/api%2Fv4/projects", 400, ""},
		{"a FastCGI app's decoded path cannot reach a protected route either", "/php/private%2Fkey", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, line := get(t, addr, tc.target, "gw.test")
			if status != tc.status || tc.status == 200 && line != tc.want {
				t.Errorf("GET %q: %d %q, want %d %q", tc.target, status, line, tc.status, tc.want)
			}
		})
	}
	t.Run("a FastCGI app gets %2F in REQUEST_URI and the decoded path in PATH_INFO, inside its mount", func(t *testing.T) {
		rs, _ := exchange(t, addr, "GET /php/objects/a%2Fb.txt HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n", 1)
		if len(rs) != 1 || rs[0].Status != 200 {
			t.Fatalf("statuses %v", statuses(rs))
		}
		var vars map[string]string
		if err := json.Unmarshal([]byte(rs[0].Body), &vars); err != nil {
			t.Fatalf("%v: %q", err, rs[0].Body)
		}
		if vars["REQUEST_URI"] != "/php/objects/a%2Fb.txt" || vars["DOCUMENT_URI"] != "/php/objects/a/b.txt" {
			t.Errorf("REQUEST_URI %q DOCUMENT_URI %q, want /php/objects/a%%2Fb.txt and /php/objects/a/b.txt", vars["REQUEST_URI"], vars["DOCUMENT_URI"])
		}
	})
	seen, _ := primary.record()
	for _, r := range seen {
		t.Errorf("the primary got %q", r.Target)
	}
}
