package migration_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/migration"
)

// build loads a configuration from environment-form variables and builds a gateway served on a real
// socket; it returns the gateway and its front URL.
func build(t *testing.T, env map[string]string) (*gateway.Gateway, string) {
	t.Helper()
	env["GATEWAY_ADMIN_ADDR"] = ""
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	front := httptest.NewServer(g.Handler)
	t.Cleanup(func() {
		front.Close()
		g.Close()
	})
	return g, front.URL
}

func app(t *testing.T, h http.HandlerFunc) string {
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}

// label is the name an app at URL u (http://127.0.0.1:PORT) has in the report and the metrics: its
// address without the scheme.
func label(u string) string { return strings.TrimPrefix(u, "http://") }

func fetch(t *testing.T, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func report(t *testing.T, g *gateway.Gateway) migration.Report {
	t.Helper()
	rec := httptest.NewRecorder()
	g.Admin["/api/migration"].ServeHTTP(rec, httptest.NewRequest("GET", "/api/migration", nil))
	var rep migration.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, rec.Body.String())
	}
	return rep
}

func routeOf(t *testing.T, rep migration.Report, pattern string) migration.RouteReport {
	t.Helper()
	for _, r := range rep.Routes {
		if r.Pattern == pattern {
			return r
		}
	}
	t.Fatalf("route %s not in the report: %+v", pattern, rep.Routes)
	return migration.RouteReport{}
}

// waitShadow waits until the route has compared n shadow copies, on the recorder's signal.
func waitShadow(t *testing.T, g *gateway.Gateway, pattern string, n uint64) migration.RouteReport {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		ch := g.Migration.ShadowUpdated()
		r := routeOf(t, report(t, g), pattern)
		if r.Shadow != nil && r.Shadow.Compared >= n {
			return r
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("shadow of %s compared %+v; want %d", pattern, r.Shadow, n)
		}
	}
}

// shadowRoute builds /api/ in the shadow stage: the old app answers Ann, the new one Anne, both with a
// changing timestamp that is ignored.
func shadowRoute(t *testing.T) (*gateway.Gateway, string, *atomic.Int64) {
	var n atomic.Int64
	old := app(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"user":{"name":"Ann","id":7},"generated_at":%d}`, n.Add(1))
	})
	var newHits atomic.Int64
	newApp := app(t, func(w http.ResponseWriter, r *http.Request) {
		newHits.Add(1)
		if r.Header.Get("X-Switchyard-Shadow") != "1" {
			http.Error(w, "not a shadow copy", 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"generated_at":%d,"user":{"id":7,"name":"Anne"}}`, time.Now().UnixNano())
	})
	g, front := build(t, map[string]string{
		"GATEWAY_ROUTES": "/api/=" + newApp + "?stage=shadow&shadow_ignore=$.generated_at&old=" + url.QueryEscape(old),
	})
	return g, front, &newHits
}

func TestAShadowRouteRecordsExactlyTheDifferingFieldWhileTheClientSeesTheOldAnswer(t *testing.T) {
	g, front, newHits := shadowRoute(t)
	for i := 0; i < 5; i++ {
		status, body, _ := fetch(t, front+"/api/user/7")
		if status != 200 || !strings.Contains(body, `"name":"Ann"`) {
			t.Fatalf("client got %d %s; want the old app's answer", status, body)
		}
	}
	r := waitShadow(t, g, "/api/", 5)
	if newHits.Load() != 5 {
		t.Fatalf("new app got %d copies; want 5", newHits.Load())
	}
	s := r.Shadow
	if s.Mismatched != 5 || s.Matched != 0 || s.Errors != 0 || len(s.Mismatches) != 5 {
		t.Fatalf("shadow report = %+v", s)
	}
	if got := s.Mismatches[0].Diff; len(got) != 1 || got[0] != `$.user.name: "Ann" != "Anne"` {
		t.Fatalf("diff = %q; want exactly the name field", got)
	}
	m := s.Mismatches[0]
	if m.Method != "GET" || m.Path != "/api/user/7" || !strings.Contains(m.Served.Body, `"Ann"`) || !strings.Contains(m.Shadow.Body, `"Anne"`) {
		t.Fatalf("sample = %+v", m)
	}
	if r.Stage != "shadow" || r.NewShare != 0 || r.Requests != 5 {
		t.Fatalf("route = %+v; the old app serves everything in the shadow stage", r)
	}
}

func TestTheLedgerAndTheNegativeCacheReportWhatHappened(t *testing.T) {
	var newHits atomic.Int64
	newApp := app(t, func(w http.ResponseWriter, r *http.Request) {
		newHits.Add(1)
		if strings.HasPrefix(r.URL.Path, "/shop/") {
			io.WriteString(w, "new shop")
			return
		}
		http.NotFound(w, r)
	})
	oldApp := app(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old "+r.URL.Path) })
	g, front := build(t, map[string]string{
		"GATEWAY_PRIMARY":   newApp,
		"GATEWAY_DELEGATES": oldApp,
		"GATEWAY_STAGE":     "primary?negative_cache=100&negative_cache_ttl=1h",
	})
	for i := 0; i < 2; i++ {
		if _, body, _ := fetch(t, front+fmt.Sprintf("/shop/%d", i+1)); body != "new shop" {
			t.Fatalf("got %q", body)
		}
	}
	for i := 0; i < 3; i++ {
		if _, body, _ := fetch(t, front+"/orders/42"); body != "old /orders/42" {
			t.Fatalf("got %q", body)
		}
	}
	if newHits.Load() != 3 { // two shop pages and the first /orders/42; the next two skip the new app
		t.Fatalf("new app was asked %d times; want 3", newHits.Load())
	}
	rep := report(t, g)
	r := routeOf(t, rep, "*")
	if r.NegativeCache == nil || r.NegativeCache.Saved != 2 || r.NegativeCache.Entries != 1 {
		t.Fatalf("negative cache = %+v; want 2 saved round trips, 1 path", r.NegativeCache)
	}
	if r.Requests != 5 || r.NewShare != 0.4 {
		t.Fatalf("route = %+v; want 5 requests, 40%% served by the new app", r)
	}
	want := map[string]map[string]uint64{
		"GET /shop/{id}":   {label(newApp): 2},
		"GET /orders/{id}": {label(oldApp): 3},
	}
	for _, row := range rep.Ledger {
		k := row.Method + " " + row.Path
		if w, ok := want[k]; ok {
			if fmt.Sprint(w) != fmt.Sprint(row.Answers) || row.Route != "*" {
				t.Errorf("ledger %s = %v on %q; want %v", k, row.Answers, row.Route, w)
			}
			delete(want, k)
		}
	}
	if len(want) > 0 {
		t.Errorf("ledger lacks %v: %+v", want, rep.Ledger)
	}

	// The same numbers as Prometheus metrics, through a private registry.
	reg := prometheus.NewPedanticRegistry()
	for _, c := range g.Collectors {
		reg.MustRegister(c)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			got[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = v
		}
	}
	for k, v := range map[string]float64{
		"switchyard_migration_negative_cache_saved_total{route=*}":                                  2,
		"switchyard_migration_requests_total{app=" + label(oldApp) + ",role=old,route=*}":           3,
		"switchyard_migration_requests_total{app=" + label(newApp) + ",role=new,route=*}":           2,
		"switchyard_migration_request_duration_seconds{app=" + label(newApp) + ",role=new,route=*}": 2,
		"switchyard_migration_new_share{route=*}":                                                   0.4,
		"switchyard_migration_stage{route=*,stage=primary}":                                         1,
	} {
		if got[k] != v {
			t.Errorf("metric %s = %v; want %v", k, got[k], v)
		}
	}
}

func TestACanaryRouteSplitsClientsThroughTheGateway(t *testing.T) {
	newApp := app(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "new") })
	oldApp := app(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old") })
	g, front := build(t, map[string]string{
		"GATEWAY_ROUTES": "/shop/=" + newApp + "?stage=canary&canary=30&sticky=header:X-User&old=" + url.QueryEscape(oldApp),
	})
	newCount := 0
	for i := 0; i < 400; i++ {
		req, _ := http.NewRequest("GET", front+"/shop/", nil)
		req.Header.Set("X-User", fmt.Sprint("user-", i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) == "new" {
			newCount++
		}
	}
	r := routeOf(t, report(t, g), "/shop/")
	if r.Stage != "canary" || r.CanaryPercent != 30 || r.Requests != 400 || r.NewShare != float64(newCount)/400 {
		t.Fatalf("route = %+v; %d went to the new app", r, newCount)
	}
	if newCount < 80 || newCount > 160 {
		t.Fatalf("%d of 400 users on the new app at 30%%", newCount)
	}
}

func TestStagesFromTheYAMLFileAndTheirErrors(t *testing.T) {
	files := map[string]string{
		"ok.yaml": `
routes:
  - pattern: /shop/
    app: http://127.0.0.1:3000
    old: http://127.0.0.1:8000?timeout=5s
    stage: canary
    canary_percent: 10
    sticky: cookie:cohort
  - pattern: /api/
    app: http://127.0.0.1:3001
    old: http://127.0.0.1:8001
    stage: shadow
    shadow_ignore: [$.generated_at, csrf_token]
    shadow_headers: [Content-Type, Location]
`,
		"bad.yaml": `
routes:
  - pattern: /shop/
    app: http://127.0.0.1:3000
    stage: canary
    canary_percent: 150
`,
	}
	read := func(p string) ([]byte, error) { return []byte(files[p]), nil }
	cfg, err := config.Load(map[string]string{"GATEWAY_CONFIG": "ok.yaml", "GATEWAY_ADMIN_ADDR": ""}, read)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	stages := map[string]string{}
	for _, r := range g.Routes {
		stages[r.Pattern] = r.Stage + " old=" + r.Old
	}
	if stages["/shop/"] != "canary 10% old=http://127.0.0.1:8000?timeout=5s" || stages["/api/"] != "shadow old=http://127.0.0.1:8001" {
		t.Fatalf("stages = %v", stages)
	}

	build := func(env map[string]string) error {
		cfg, err := config.Load(env, read)
		if err != nil {
			return err
		}
		g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
		if err == nil {
			g.Close()
		}
		return err
	}
	err = build(map[string]string{"GATEWAY_CONFIG": "bad.yaml", "GATEWAY_ADMIN_ADDR": ""})
	if err == nil || !strings.Contains(err.Error(), `bad.yaml:6: routes[0]: route /shop/: canary_percent="150"`) { // the key's line, the key as the file names it
		t.Fatalf("err = %v; want it to name the key's line, the route and the key", err)
	}
	err = build(map[string]string{"GATEWAY_STAGE": "shadow"})
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_STAGE=\"shadow\": a stage needs GATEWAY_PRIMARY") {
		t.Fatalf("err = %v", err)
	}
}
