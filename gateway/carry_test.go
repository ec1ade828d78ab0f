package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/migration"
)

// carryApps are a new and an old app: the old one answers everything; the new one answers /shop/ and
// /api/, 404 elsewhere; both answer /api/ with the same JSON.
func carryApps(t *testing.T) (newURL, oldURL string) {
	newApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/api/"):
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
		case strings.HasPrefix(r.URL.Path, "/shop/"):
			io.WriteString(w, "new")
		default:
			http.NotFound(w, r)
		}
	}))
	oldApp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok":true}`)
			return
		}
		io.WriteString(w, "old")
	}))
	t.Cleanup(newApp.Close)
	t.Cleanup(oldApp.Close)
	return newApp.URL, oldApp.URL
}

func buildWith(t *testing.T, env map[string]string, prev *Gateway) *Gateway {
	t.Helper()
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger, Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func serve(t *testing.T, g *Gateway, paths ...string) {
	t.Helper()
	for _, p := range paths {
		rec := httptest.NewRecorder()
		g.Handler.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d %s", p, rec.Code, rec.Body)
		}
	}
}

func routeReport(t *testing.T, g *Gateway, pattern string) migration.RouteReport {
	t.Helper()
	for _, r := range g.Migration.Report().Routes {
		if r.Pattern == pattern {
			return r
		}
	}
	t.Fatalf("no route %s in the report", pattern)
	return migration.RouteReport{}
}

// waitCompared waits for the shadow of pattern to have compared n copies (they are compared
// asynchronously).
func waitCompared(t *testing.T, g *Gateway, pattern string, n uint64) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := g.Migration.ShadowUpdated()
		if s := routeReport(t, g, pattern).Shadow; s != nil && s.Compared >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: fewer than %d shadow copies compared", pattern, n)
		}
	}
}

func TestMigrationNumbersSurviveAReloadThatLeavesTheRouteUnchanged(t *testing.T) {
	newURL, oldURL := carryApps(t)
	old := url.QueryEscape(oldURL)
	routes := func(canary int) string {
		return strings.Join([]string{
			"/api/=" + newURL + "?stage=shadow&shadow_ignore=$.ts&old=" + old,
			"/shop/=" + newURL + fmt.Sprintf("?stage=canary&canary=%d&sticky=header:X-User&old=", canary) + old,
			"/plain/=" + oldURL,
		}, ",")
	}
	env := map[string]string{
		"GATEWAY_PRIMARY":   newURL,
		"GATEWAY_DELEGATES": oldURL,
		"GATEWAY_STAGE":     "primary?negative_cache=100",
		"GATEWAY_ROUTES":    routes(100),
	}
	g1 := buildWith(t, env, nil)
	serve(t, g1, "/api/a", "/api/b", "/shop/1", "/plain/x", "/orders/7", "/orders/7", "/orders/7")
	waitCompared(t, g1, "/api/", 2)
	before := map[string]migration.RouteReport{}
	for _, p := range []string{"/api/", "/shop/", "/plain/", "*"} {
		before[p] = routeReport(t, g1, p)
	}
	if n := before["*"].NegativeCache; n == nil || n.Entries != 1 || n.Saved != 2 {
		t.Fatalf("negative cache before the reload = %+v; want 1 path, 2 saved", n)
	}

	// A reload with the same configuration (a certificate renewal, a bare SIGHUP) keeps everything.
	g2 := buildWith(t, env, g1)
	if len(g2.NumbersReset) != 0 || len(g2.NumbersRemoved) != 0 {
		t.Fatalf("reset %v removed %v; want nothing reset by an unchanged configuration", g2.NumbersReset, g2.NumbersRemoved)
	}
	for p, want := range before {
		got := routeReport(t, g2, p)
		if d := cmp.Diff(want, got, cmpopts.IgnoreUnexported(migration.AppReport{})); d != "" {
			t.Errorf("route %s after the reload (-before +after):\n%s", p, d)
		}
	}
	if got, want := g2.Migration.Report().Ledger, g1.Migration.Report().Ledger; !cmp.Equal(got, want) {
		t.Errorf("ledger after the reload = %+v; want %+v", got, want)
	}
	// The numbers keep counting on the new configuration, the negative cache keeps its misses.
	serve(t, g2, "/api/c", "/orders/7")
	waitCompared(t, g2, "/api/", 3)
	if r := routeReport(t, g2, "/api/"); r.Requests != 3 || r.Shadow.Matched != 3 {
		t.Errorf("/api/ after a request on the new configuration: %d requests, %d matched; want 3 and 3", r.Requests, r.Shadow.Matched)
	}
	if n := routeReport(t, g2, "*").NegativeCache; n.Saved != 3 {
		t.Errorf("negative cache saved %d after the reload; want 3 (the remembered miss still skips the new app)", n.Saved)
	}

	// Changing one route's canary share resets that route only, and says so; removing one is reported.
	env["GATEWAY_ROUTES"] = strings.Join(strings.Split(routes(50), ",")[:2], ",")
	g3 := buildWith(t, env, g2)
	if !cmp.Equal(g3.NumbersReset, []string{"/shop/"}) || !cmp.Equal(g3.NumbersRemoved, []string{"/plain/"}) {
		t.Fatalf("reset %v removed %v; want /shop/ reset and /plain/ removed", g3.NumbersReset, g3.NumbersRemoved)
	}
	if r := routeReport(t, g3, "/shop/"); r.Requests != 0 || !r.Since.After(before["/shop/"].Since) {
		t.Errorf("/shop/ after its share changed: %d requests since %v; want a fresh start", r.Requests, r.Since)
	}
	if r := routeReport(t, g3, "/api/"); r.Requests != 3 || !r.Since.Equal(before["/api/"].Since) {
		t.Errorf("/api/ after another route changed: %d requests since %v; want 3 since %v", r.Requests, r.Since, before["/api/"].Since)
	}
	for _, row := range g3.Migration.Report().Ledger {
		if row.Route == "/shop/" || row.Route == "/plain/" {
			t.Errorf("ledger row of a reset or removed route kept: %+v", row)
		}
	}
}

func TestEveryPartOfARouteKeyResetsItsNumbers(t *testing.T) {
	newURL, oldURL := carryApps(t)
	base := newURL + "?stage=shadow&old=" + url.QueryEscape(oldURL)
	for _, tc := range []struct {
		name, route string
		reset       bool
	}{
		{"the same route keeps its numbers", base, false},
		{"the shadow queue size keeps them (capacity, not meaning)", base + "&shadow_queue=10&shadow_workers=2", false},
		{"another stage resets them", newURL + "?stage=legacy&old=" + url.QueryEscape(oldURL), true},
		{"another ignore list resets them", base + "&shadow_ignore=$.ts", true},
		{"another header list resets them", base + "&shadow_headers=", true},
		{"another old app resets them", newURL + "?stage=shadow&old=" + url.QueryEscape(oldURL+"/v2"), true},
		{"another new app option resets them", base + "&timeout=3s", true},
		{"another name resets them", base + "&name=shop", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g1 := buildWith(t, map[string]string{"GATEWAY_ROUTES": "/api/=" + base}, nil)
			serve(t, g1, "/api/x")
			g2 := buildWith(t, map[string]string{"GATEWAY_ROUTES": "/api/=" + tc.route}, g1)
			reset := cmp.Equal(g2.NumbersReset, []string{"/api/"})
			if n := routeReport(t, g2, "/api/").Requests; reset != tc.reset || (n == 0) != tc.reset {
				t.Fatalf("reset %v, %d requests kept; want reset=%v", g2.NumbersReset, n, tc.reset)
			}
		})
	}
}
