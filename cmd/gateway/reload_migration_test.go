package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/switchyard/switchyard/migration"
)

// TestAReloadKeepsTheNumbersOfUnchangedRoutesAndDropsRemovedApps runs the binary with a YAML file of two
// migrating routes, edits one route's stage and removes an app, and checks that the unchanged route kept
// its numbers (through /api/migration), that the log line names the route that was reset, and that
// /metrics no longer has series of the removed app.
func TestAReloadKeepsTheNumbersOfUnchangedRoutesAndDropsRemovedApps(t *testing.T) {
	answer := func(s string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) }))
		t.Cleanup(srv.Close)
		return srv
	}
	newApp, oldApp, extra := answer("new"), answer("old"), answer("extra")
	file := filepath.Join(t.TempDir(), "gw.yaml")
	config := func(shopStage string, withExtra bool) []byte {
		b := fmt.Appendf(nil, `routes:
  - pattern: /api/
    app: %[1]s
    old: %[2]s
    stage: canary
    canary_percent: 100
  - pattern: /shop/
    app: %[1]s
    old: %[2]s
    stage: %[3]s
`, newApp.URL, oldApp.URL, shopStage)
		if withExtra {
			b = fmt.Appendf(b, "  - pattern: /extra/\n    app: %s?name=extra-app\n", extra.URL)
		}
		return b
	}
	replaceFile(t, file, config("legacy", true))
	p := startGateway(t, "GATEWAY_CONFIG="+file)

	get := func(path string) string {
		t.Helper()
		status, body, err := getBody(http.DefaultClient, "http://"+p.addr+path)
		if err != nil || status != 200 {
			t.Fatalf("GET %s = %d, %v", path, status, err)
		}
		return body
	}
	for _, path := range []string{"/api/1", "/api/2", "/shop/1", "/extra/1"} {
		get(path)
	}
	report := func() map[string]migration.RouteReport {
		t.Helper()
		status, body, err := getBody(http.DefaultClient, "http://"+p.admin+"/api/migration")
		if err != nil || status != 200 {
			t.Fatalf("/api/migration = %d, %v", status, err)
		}
		var rep migration.Report
		if err := json.Unmarshal([]byte(body), &rep); err != nil {
			t.Fatal(err)
		}
		out := map[string]migration.RouteReport{}
		for _, r := range rep.Routes {
			out[r.Pattern] = r
		}
		return out
	}
	before := report()
	if before["/api/"].Requests != 2 || before["/shop/"].Requests != 1 {
		t.Fatalf("before the reload: /api/ %d, /shop/ %d requests; want 2 and 1", before["/api/"].Requests, before["/shop/"].Requests)
	}
	metrics := func() string {
		t.Helper()
		_, body, err := getBody(http.DefaultClient, "http://"+p.admin+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
	// shopSeries lists the migration series of /shop/, without their values.
	shopSeries := func(m string) []string {
		var out []string
		for _, l := range strings.Split(m, "\n") {
			if strings.HasPrefix(l, "switchyard_migration_") && strings.Contains(l, `route="/shop/"`) {
				out = append(out, l[:strings.LastIndexByte(l, ' ')])
			}
		}
		return out
	}
	m := metrics()
	if !strings.Contains(m, `app="extra-app"`) {
		t.Fatalf("/metrics lacks the extra app before the reload")
	}
	shopBefore := shopSeries(m)

	// A bare SIGHUP changes nothing: nothing is reset.
	p.cmd.Process.Signal(syscall.SIGHUP)
	line := p.waitFor(t, "configuration reloaded", "trigger=SIGHUP")
	if strings.Contains(line, "migration_numbers") {
		t.Fatalf("an unchanged configuration reset numbers: %s", line)
	}
	if r := report()["/shop/"]; r.Requests != 1 || !r.Since.Equal(before["/shop/"].Since) {
		t.Fatalf("/shop/ after a bare SIGHUP: %d requests since %v; want 1 since %v", r.Requests, r.Since, before["/shop/"].Since)
	}

	// /shop/ moves on to the shadow stage and /extra/ goes away.
	replaceFile(t, file, config("shadow", false))
	line = p.waitFor(t, "configuration reloaded")
	if !strings.Contains(line, "migration_numbers_reset=/shop/") || !strings.Contains(line, "migration_numbers_removed=/extra/") {
		t.Fatalf("reload line %q; want it to name /shop/ as reset and /extra/ as removed", line)
	}
	after := report()
	if r := after["/api/"]; r.Requests != 2 || r.NewShare != 1 || !r.Since.Equal(before["/api/"].Since) {
		t.Errorf("/api/ after the reload: %+v; want its 2 requests kept", r)
	}
	if r := after["/shop/"]; r.Requests != 0 || r.Stage != "shadow" {
		t.Errorf("/shop/ after its stage changed: %+v; want a fresh start in the shadow stage", r)
	}
	if _, ok := after["/extra/"]; ok {
		t.Errorf("/extra/ is still in the report")
	}
	get("/api/3")
	get("/shop/2")
	m = metrics()
	for _, gone := range []string{`app="extra-app"`, `route="/extra/"`} {
		if strings.Contains(m, gone) {
			t.Errorf("/metrics still has %s after the reload removed it", gone)
		}
	}
	newLabel := strings.TrimPrefix(newApp.URL, "http://")
	if want := `switchyard_requests_total{app="` + newLabel + `",method="GET",protocol="http1",route="/api/",status_class="2xx"} 3`; !strings.Contains(m, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if got := shopSeries(m); strings.Join(got, "\n") != strings.Join(shopBefore, "\n") {
		t.Errorf("the stage change changed the series of /shop/:\nbefore:\n%s\nafter:\n%s", strings.Join(shopBefore, "\n"), strings.Join(got, "\n"))
	}
	// `gateway report` shows the same labels.
	cmd := exec.Command(binary, "report")
	cmd.Env = []string{"GATEWAY_ADMIN_ADDR=" + p.admin}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), newLabel) || strings.Contains(string(out), "?stage") || strings.Contains(string(out), "http://") {
		t.Errorf("gateway report: %v\n%s\nwant the apps named %s and by no URL", err, out, newLabel)
	}
	if bad := regexp.MustCompile(`app="[^"]*[?&=][^"]*"`).FindString(m); bad != "" {
		t.Errorf("/metrics has an app label with options: %s", bad)
	}
}
