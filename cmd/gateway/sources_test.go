package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/switchyard/switchyard/config"
)

// A variable that replaces keys of the file is logged at start and at every reload, so a user editing
// the file learns why the edit does not run.
func TestOverridingVariablesAreLoggedAtStartAndReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	file := "routes:\n  - {pattern: /a/, app: 'status:403'}\n  - {pattern: /b/, app: 'status:403'}\n  - {pattern: /c/, app: 'status:403'}\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startGateway(t, "GATEWAY_CONFIG="+path, "GATEWAY_ROUTES=/x/=status:404")
	// At start the line comes before "listening" (startGateway reads past it); run logs it for serve and
	// check alike, which the check below shows. Here: every reload logs it again.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "GATEWAY_ROUTES overrides the 3 routes of "+path+" (line 1)")
	p.waitFor(t, "configuration reloaded", "trigger=SIGHUP")

	var out, errb bytes.Buffer
	if code := run([]string{"check"}, []string{"GATEWAY_CONFIG=" + path, "GATEWAY_ROUTES=/x/=status:404"}, &out, &errb); code != 0 {
		t.Fatalf("check: exit %d: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "GATEWAY_ROUTES overrides the 3 routes of "+path+" (line 1)") {
		t.Errorf("check did not log the override:\n%s", errb.String())
	}
}

// gateway check shows where every value comes from: a variable, a file line, or the default.
func TestCheckShowsTheSourceOfEveryValue(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gw.yaml")
	if err := os.WriteFile(path, []byte("primary: http://127.0.0.1:8000\nidle_timeout: 5s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"check"}, []string{"GATEWAY_CONFIG=" + path, "GATEWAY_MAX_CONNS=100"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	rows := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && strings.HasPrefix(f[0], "GATEWAY_") {
			rows[f[0]] = strings.Join(f[3:], " ")
		}
	}
	for v, from := range map[string]string{
		"GATEWAY_PRIMARY":      path + ":1: primary",
		"GATEWAY_IDLE_TIMEOUT": path + ":2: idle_timeout",
		"GATEWAY_MAX_CONNS":    "GATEWAY_MAX_CONNS",
		"GATEWAY_ADDR":         "default",
	} {
		if rows[v] != from {
			t.Errorf("%s: FROM %q, want %q\n%s", v, rows[v], from, out.String())
		}
	}
	if len(rows) != len(config.Variables()) {
		t.Errorf("check lists %d settings, want every variable:\n%s", len(rows), out.String())
	}
}

// gateway check warns about a param. that the app reads only from its process environment.
func TestCheckWarnsAboutProcessLevelParams(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"check"}, []string{"GATEWAY_ROUTES=b.example.com/=uwsgi://127.0.0.1:3031?param.DJANGO_SETTINGS_MODULE=site.settings_b"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "warning: GATEWAY_ROUTES: route b.example.com/: app ") || !strings.Contains(out.String(), "param.DJANGO_SETTINGS_MODULE does nothing") {
		t.Errorf("check output lacks the warning:\n%s", out.String())
	}
}
