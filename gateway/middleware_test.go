package gateway

import (
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestMiddlewareFromYAML builds a gateway from a YAML file with a middleware chain on a route and a global
// one from GATEWAY_MIDDLEWARE, and checks the order (first outermost) and the effect of each.
func TestMiddlewareFromYAML(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/private" {
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "1", Path: "/"})
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		fmt.Fprintf(w, "path=%s trace=%s global=%s auth=%q user=%s", r.URL.Path, strings.Join(r.Header.Values("X-Trace"), ","),
			r.Header.Get("X-Global"), r.Header.Get("Authorization"), r.Header.Get("X-Auth-User"))
	}))
	defer app.Close()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	yaml := fmt.Sprintf(`
primary: %[1]s
routes:
  - pattern: /app/
    app: %[1]s
    options: {strip_prefix: "true"}
    middleware:
      - {name: headers, params: {request.add.X-Trace: outer, response.add.X-Trace: outer}}
      - {name: basic_auth, params: {users: "alice:%[2]s", realm: shop, user_header: X-Auth-User}}
      - name: prefix_rewrite
      - {name: rewrite, params: {prefix: /old, to: /new}}
      - {name: headers, params: {request.add.X-Trace: inner, response.add.X-Trace: inner}}
`, app.URL, hash)
	env := map[string]string{"GATEWAY_CONFIG": "gw.yaml", "GATEWAY_MIDDLEWARE": "headers(request.set.X-Global=yes),security_headers"}
	cfg, err := config.Load(env, func(string) ([]byte, error) { return []byte(yaml), nil })
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if d := cmp.Diff([]string{"headers(request.add.X-Trace=outer;response.add.X-Trace=outer)", "basic_auth(realm=shop;user_header=X-Auth-User;users=...)",
		"prefix_rewrite", "rewrite(prefix=/old;to=/new)", "headers(request.add.X-Trace=inner;response.add.X-Trace=inner)"}, g.Routes[0].Middleware); d != "" {
		t.Errorf("route middleware description -want +got:\n%s", d)
	}
	if d := cmp.Diff([]string{"headers(request.set.X-Global=yes)", "security_headers"}, g.Middleware); d != "" {
		t.Errorf("global middleware description -want +got:\n%s", d)
	}
	srv := httptest.NewServer(g.Handler)
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string, user string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if user != "" {
			req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user)))
		}
		req.Header.Set("X-Auth-User", "forged")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	tests := []struct {
		name     string
		path     string
		user     string
		status   int
		body     string
		trace    string
		location string
		cookie   string
	}{
		{"basic auth stops a request without credentials, inside the outer headers", "/app/x", "", 401, "", "outer", "", ""},
		{"a good request passes every middleware in order, after prefix stripping", "/app/old/x", "alice:pw", 200,
			`path=/new/x trace=outer,inner global=yes auth="" user=alice`, "inner,outer", "", ""},
		{"the app's redirect and cookie get the mount prefix back", "/app/private", "alice:pw", 302, "", "inner,outer", "/app/login", "sid=1; Path=/app/"},
		{"the global chain also wraps the fallback", "/elsewhere", "", 200, `path=/elsewhere trace= global=yes auth="" user=forged`, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(tt.path, tt.user)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("app saw %q, want %q", body, tt.body)
			}
			if got := strings.Join(resp.Header.Values("X-Trace"), ","); got != tt.trace {
				t.Errorf("response X-Trace %q, want %q", got, tt.trace)
			}
			if resp.Header.Get("Location") != tt.location || resp.Header.Get("Set-Cookie") != tt.cookie {
				t.Errorf("Location %q Set-Cookie %q", resp.Header.Get("Location"), resp.Header.Get("Set-Cookie"))
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("the global security headers are missing: %v", resp.Header)
			}
		})
	}
}

func TestMiddlewareErrorsNameWhereAndWhat(t *testing.T) {
	app := "http://127.0.0.1:9"
	tests := []struct {
		name string
		env  map[string]string
		yaml string
		want string
	}{
		{"a bad route parameter names the file route's middleware line, the middleware and the parameter", map[string]string{"GATEWAY_CONFIG": "gw.yaml"},
			"routes:\n  - pattern: /a/\n    app: " + app + "\n    middleware: [{name: gzip}, {name: ratelimit, params: {rate: often}}]\n",
			`gw.yaml:4: routes[0]: route /a/: middleware[1] ratelimit: parameter rate="often": expected COUNT/WINDOW`},
		{"a bad global middleware names the variable", map[string]string{"GATEWAY_PRIMARY": app, "GATEWAY_MIDDLEWARE": "gzip(level=9)"}, "",
			`GATEWAY_MIDDLEWARE: middleware[0] gzip: unknown parameter level`},
		{"a bad global middleware in the file names the file", map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, "primary: " + app + "\nmiddleware: [{name: nope}]\n",
			`gw.yaml:2: middleware: middleware[0] "nope": unknown middleware`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(tt.env, func(string) ([]byte, error) { return []byte(tt.yaml), nil })
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRouteMiddlewareFromGo(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Header.Get("X-From-Go")) }))
	defer app.Close()
	cfg, err := config.Load(map[string]string{"GATEWAY_ROUTES": "/api/=" + app.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tag := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Set("X-From-Go", "yes")
			next.ServeHTTP(w, r)
		})
	}
	if _, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil), RouteMiddleware: map[string][]func(http.Handler) http.Handler{"/nope/": {tag}}}); err == nil || !strings.Contains(err.Error(), `no route has pattern "/nope/"`) {
		t.Fatalf("unknown pattern: %v", err)
	}
	g, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil), RouteMiddleware: map[string][]func(http.Handler) http.Handler{"/api/": {tag}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "yes" || g.Routes[0].Middleware[0] != "1 Go middleware" {
		t.Fatalf("app saw %q, route middleware %v", b, g.Routes[0].Middleware)
	}
}
