package deploy_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The variant where the gateway runs the apps (docs/run-apps.md): its configuration passes `gateway
// check`, which lists the apps, and the unit stops the gateway before its apps and gives both time.
func TestSystemdRunApps(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile(repoPath("deploy", "systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	text := read("gateway-runapps.service")
	unit, err := parseUnit(text)
	if err != nil {
		t.Fatalf("gateway-runapps.service: %v", err)
	}
	env, err := parseEnvFile(read("gateway-runapps.env"))
	if err != nil {
		t.Fatalf("gateway-runapps.env: %v", err)
	}
	svc := func(k string) string { return unit.last("Service", k) }

	t.Run("the unit reads the sample environment, which names the sample YAML file", func(t *testing.T) {
		if got := svc("EnvironmentFile"); got != "/etc/switchyard/gateway-runapps.env" {
			t.Errorf("EnvironmentFile=%s", got)
		}
		if env["GATEWAY_CONFIG"] != "/etc/switchyard/gateway-runapps.yaml" {
			t.Errorf("GATEWAY_CONFIG=%s", env["GATEWAY_CONFIG"])
		}
	})
	t.Run("the configuration passes gateway check, which lists every run app", func(t *testing.T) {
		// The apps' directories and programs must exist for check: the sample's are made in a temp dir.
		root := t.TempDir()
		yaml := read("gateway-runapps.yaml")
		for _, d := range []string{"/srv/portal", "/srv/legacy"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
			yaml = strings.ReplaceAll(yaml, "dir: "+d, "dir: "+filepath.Join(root, d))
		}
		for _, prog := range []string{"/usr/bin/gunicorn", "/usr/bin/uwsgi"} {
			if _, err := os.Stat(prog); err != nil {
				fake := filepath.Join(root, filepath.Base(prog))
				if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				yaml = strings.ReplaceAll(yaml, prog, fake)
			}
		}
		path := filepath.Join(root, "gateway-runapps.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		e := checkVariables(t, "gateway-runapps.env", env)
		e["GATEWAY_CONFIG"] = path
		out := gatewayCheck(t, "deploy/systemd/gateway-runapps.yaml", e)
		for _, app := range []string{"site-a", "site-b", "legacy"} {
			if !strings.Contains(out, "\n"+app+" ") {
				t.Errorf("gateway check does not list run app %s:\n%s", app, out)
			}
		}
		checkAdminDefault(t, "gateway-runapps.env", env)
	})
	t.Run("stopping signals the gateway alone and waits for its drain and its apps' stop", func(t *testing.T) {
		if svc("KillSignal") != "SIGTERM" || svc("KillMode") != "mixed" {
			t.Errorf("KillSignal=%s KillMode=%s, want SIGTERM and mixed (the gateway stops its apps after its drain)", svc("KillSignal"), svc("KillMode"))
		}
		stop, err := systemdSeconds(svc("TimeoutStopSec"))
		if err != nil {
			t.Fatal(err)
		}
		const appStop = 10 * time.Second // the apps' stop_timeout in the sample (the default)
		if drain := shutdownTimeout(t, "gateway-runapps.env", env); stop <= drain+appStop {
			t.Errorf("TimeoutStopSec %v is not longer than GATEWAY_SHUTDOWN_TIMEOUT %v plus the apps' stop timeout %v", stop, drain, appStop)
		}
		if f := strings.Fields(svc("ExecReload")); len(f) < 2 || f[1] != "-HUP" {
			t.Errorf("ExecReload=%s, want kill -HUP $MAINPID (a reload replaces changed apps without downtime)", svc("ExecReload"))
		}
	})
	t.Run("hardened, except what the apps need", func(t *testing.T) {
		for k, v := range map[string]string{"DynamicUser": "yes", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes", "RestrictSUIDSGID": "yes"} {
			if got := svc(k); got != v {
				t.Errorf("%s=%s, want %s", k, got, v)
			}
		}
		if svc("MemoryDenyWriteExecute") == "yes" {
			t.Error("MemoryDenyWriteExecute=yes: the apps inherit it, and Node and PHP's JIT cannot run under it")
		}
	})
	t.Run("systemd-analyze accepts the unit", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed; the unit was parsed above")
		}
		dir := t.TempDir()
		u := strings.ReplaceAll(text, "/usr/local/bin/gateway", gatewayBinary(t))
		u = strings.ReplaceAll(u, "EnvironmentFile=/etc/switchyard/gateway-runapps.env", "EnvironmentFile="+repoPath("deploy", "systemd", "gateway-runapps.env"))
		path := filepath.Join(dir, "switchyard.service")
		if err := os.WriteFile(path, []byte(u), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, analyze, "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}
