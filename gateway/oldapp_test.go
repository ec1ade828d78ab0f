package gateway

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// scriptApp writes a CGI program answering "SCRIPT_NAME|PATH_INFO" and returns its APP URL.
func scriptApp(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "where.sh")
	script := "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s|%s' \"$SCRIPT_NAME\" \"$PATH_INFO\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "cgi://" + path
}

// stages are every migration stage a route can take, as route options.
var stages = []string{"stage=legacy", "stage=shadow", "stage=canary&canary=0", "stage=canary&canary=100", "stage=primary", "stage=retired"}

func TestTheOldAppOfAMigratingRouteSeesTheClientsPath(t *testing.T) {
	for _, stage := range stages {
		t.Run(stage, func(t *testing.T) {
			// The new app (prefix stripped) knows nothing yet: every answer of the route comes from the old
			// app, or at "retired" from the primary through cascade=true.
			newApp := reportingApp(t, "new", 404)
			old := reportingApp(t, "old", 200)
			primary := reportingApp(t, "primary", 200)
			route := "/shop/=" + newApp.URL + "?strip_prefix=true&cascade=true&" + stage + "&old=" + url.QueryEscape(old.URL)
			srv, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": primary.URL, "GATEWAY_ROUTES": route})
			want := "old"
			if strings.Contains(stage, "retired") {
				want = "primary"
			}
			for _, path := range []string{"/shop/products/1/?q=1", "/shop", "/shop/"} {
				resp, s := get(t, nil, "GET", srv.URL+path, nil, nil)
				wantPath, wantQuery, _ := strings.Cut(path, "?")
				if resp.StatusCode != 200 || s.App != want || s.Path != wantPath || s.Query != wantQuery {
					t.Errorf("GET %s: %d from %s with path %q query %q, want 200 from %s with %q %q", path, resp.StatusCode, s.App, s.Path, s.Query, want, wantPath, wantQuery)
				}
				if p := s.Header["X-Forwarded-Prefix"]; p != "" {
					t.Errorf("GET %s: %s got X-Forwarded-Prefix %q: the old side must see the request as with no route", path, s.App, p)
				}
			}
		})
	}
}

func TestTheNewAppOfAMigratingRouteStillHasItsPrefixStripped(t *testing.T) {
	newApp := reportingApp(t, "new", 200)
	old := reportingApp(t, "old", 200)
	route := "/shop/=" + newApp.URL + "?strip_prefix=true&stage=primary&old=" + url.QueryEscape(old.URL)
	srv, _ := startGateway(t, map[string]string{"GATEWAY_ROUTES": route})
	_, s := get(t, nil, "GET", srv.URL+"/shop/cart", nil, nil)
	if s.App != "new" || s.Path != "/cart" || s.Header["X-Forwarded-Prefix"] != "/shop" {
		t.Fatalf("got %s with path %q, X-Forwarded-Prefix %q; want new with /cart and /shop", s.App, s.Path, s.Header["X-Forwarded-Prefix"])
	}
}

func TestAnOldHTTPAppCanAskForTheStrippedPath(t *testing.T) {
	newApp := reportingApp(t, "new", 404)
	old := reportingApp(t, "old", 200)
	route := "/shop/=" + newApp.URL + "?stage=legacy&old=" + url.QueryEscape(old.URL+"?strip_prefix=true")
	srv, _ := startGateway(t, map[string]string{"GATEWAY_ROUTES": route})
	_, s := get(t, nil, "GET", srv.URL+"/shop/cart", nil, nil)
	if s.App != "old" || s.Path != "/cart" || s.Header["X-Forwarded-Prefix"] != "/shop" {
		t.Fatalf("got %s with path %q, X-Forwarded-Prefix %q; want old with /cart and /shop", s.App, s.Path, s.Header["X-Forwarded-Prefix"])
	}
}

func TestScriptNameOfMountAwareApps(t *testing.T) {
	newApp := reportingApp(t, "new", 404)
	tests := []struct {
		name, route, want string
	}{
		{"a mount-aware route app gets the route's prefix as SCRIPT_NAME", "/shop/=%[1]s", "/shop|/products/1"},
		{"script_name= makes a route app see the full path", "/shop/=%[1]s?script_name=", "|/shop/products/1"},
		{"an old app gets the full path at every stage", "/shop/=%[2]s?stage=legacy&old=%[3]s", "|/shop/products/1"},
		{"an old app given script_name=/shop gets the route's prefix", "/shop/=%[2]s?stage=legacy&old=%[4]s", "/shop|/products/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := scriptApp(t)
			route := strings.NewReplacer("%[1]s", app, "%[2]s", newApp.URL, "%[3]s", url.QueryEscape(app),
				"%[4]s", url.QueryEscape(app+"?script_name=/shop")).Replace(tt.route)
			srv, _ := startGateway(t, map[string]string{"GATEWAY_ROUTES": route})
			resp, err := http.Get(srv.URL + "/shop/products/1")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != tt.want {
				t.Fatalf("route %s: got %d %q, want 200 SCRIPT_NAME|PATH_INFO %q", route, resp.StatusCode, b, tt.want)
			}
		})
	}
}

func TestBuildRefusesScriptNameAndPassHeaderWhereTheyMeanNothing(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"GATEWAY_ROUTES": "/a/=http://y?script_name="},
			`GATEWAY_ROUTES: route /a/: app "http://y?script_name=": option script_name="" applies only to mount-aware apps (the CGI family and file), not to http apps`},
		{map[string]string{"GATEWAY_ROUTES": "/a/=uwsgi://y?script_name=/b"},
			`option script_name="/b": expected an empty value (the app sees the full path) or a prefix of the route's prefix "/a/"`},
		{map[string]string{"GATEWAY_ROUTES": "/a/=uwsgi://y?strip_prefix=true"},
			`strip_prefix does not apply to uwsgi apps: they get the route's prefix as SCRIPT_NAME (script_name= makes them see the full path)`},
		{map[string]string{"GATEWAY_PRIMARY": "http://x?pass_header=X%20Y"},
			`GATEWAY_PRIMARY: app "http://x?pass_header=X%20Y": option pass_header="X Y": expected a header name such as X-Switchyard-Pass`},
		{map[string]string{"GATEWAY_ROUTES": "/a/=http://y?stage=legacy&old=" + url.QueryEscape("uwsgi://z?script_name=/c")},
			`GATEWAY_ROUTES: route /a/ (old): app "uwsgi://z?script_name=/c": option script_name="/c"`},
	} {
		cfg, err := config.Load(tc.env, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("env %v: error %v, want it to contain %q", tc.env, err, tc.want)
		}
	}
}

func TestWarningsForAMountAwareAppOnThePrimarysAddressWithAnotherScriptName(t *testing.T) {
	const uw = "uwsgi://127.0.0.1:3031"
	tests := []struct {
		name   string
		routes string
		want   []string // substrings, one per warning
	}{
		{"the same app under a route gets the prefix as SCRIPT_NAME: warned", "/shop/=" + uw,
			[]string{`route /shop/: the app uwsgi://127.0.0.1:3031 is the app of GATEWAY_PRIMARY but gets SCRIPT_NAME="/shop" where GATEWAY_PRIMARY gets SCRIPT_NAME="": ` +
				`the same site would build its URLs (reverse(), redirects, cookie paths) differently under /shop/; add script_name= to serve it as part of the same site`}},
		{"with script_name= it is part of the same site: no warning", "/shop/=" + uw + "?script_name=", nil},
		{"another app under the route: no warning", "/shop/=uwsgi://127.0.0.1:3032", nil},
		{"an old app on the primary's address sees the full path: no warning", "/shop/=http://127.0.0.1:3000?stage=legacy&old=" + url.QueryEscape(uw), nil},
		{"an old app given script_name=/shop: warned", "/shop/=http://127.0.0.1:3000?stage=legacy&old=" + url.QueryEscape(uw+"?script_name=/shop"),
			[]string{`route /shop/: the old app uwsgi://127.0.0.1:3031 is the app of GATEWAY_PRIMARY`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": uw, "GATEWAY_ROUTES": tt.routes}, nil)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if len(g.Warnings) != len(tt.want) {
				t.Fatalf("warnings %q, want %d", g.Warnings, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(g.Warnings[i], w) {
					t.Errorf("warning %q\nwant it to contain %q", g.Warnings[i], w)
				}
			}
		})
	}
}
