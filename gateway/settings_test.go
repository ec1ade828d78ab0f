package gateway

import (
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/config"
)

// restartVariables lists the setting tags of RestartSettings, nested structs included.
func restartVariables(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if v := f.Tag.Get("setting"); v != "" {
			out = append(out, v)
		} else if f.Type.Kind() == reflect.Struct {
			out = append(out, restartVariables(f.Type)...)
		}
	}
	return out
}

// changeSetting changes, in cfg, the field whose variable is variable to another value of its type.
func changeSetting(t *testing.T, cfg *config.Config, variable string) {
	t.Helper()
	v := reflect.ValueOf(cfg).Elem()
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("env") != variable {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(f.String() + "changed")
		case reflect.Bool:
			f.SetBool(!f.Bool())
		case reflect.Int, reflect.Int64:
			f.SetInt(f.Int() + int64(time.Second))
		default:
			t.Fatalf("%s: cannot change a %s", variable, f.Type())
		}
		return
	}
	t.Fatalf("no configuration field has variable %s", variable)
}

// Every setting only a restart applies (RestartSettings, derived from what the listeners read) is named by
// a reload that changes it, and nothing else is: the warning comes from the declaration, not a list.
func TestAChangedListenerSettingIsReportedAsNeedingARestart(t *testing.T) {
	vars := restartVariables(reflect.TypeOf(RestartSettings{}))
	if len(vars) < 10 {
		t.Fatalf("restart settings %v", vars)
	}
	for _, variable := range vars {
		t.Run(variable, func(t *testing.T) {
			started := config.Defaults()
			var logs strings.Builder
			rl := &Reloader{Logger: slog.New(slog.NewTextHandler(&logs, nil)), started: started}
			cfg := started
			changeSetting(t, &cfg, variable)
			rl.warnRestartSettings(cfg)
			if n := strings.Count(logs.String(), "needs a restart"); n != 1 || !strings.Contains(logs.String(), variable) {
				t.Fatalf("%d warnings, want one naming %s:\n%s", n, variable, logs.String())
			}
		})
	}
	t.Run("a reloadable setting", func(t *testing.T) {
		var logs strings.Builder
		rl := &Reloader{Logger: slog.New(slog.NewTextHandler(&logs, nil)), started: config.Defaults()}
		cfg := config.Defaults()
		cfg.UpstreamTimeout, cfg.Primary = config.Duration(time.Second), "http://127.0.0.1:1"
		rl.warnRestartSettings(cfg)
		if logs.Len() != 0 {
			t.Fatalf("warned:\n%s", logs.String())
		}
	})
}

// The listener stack reads its settings from FrontSettings alone, so a TLS configuration given to NewFront
// counts as TLS and a change of a listener setting reads as a change of the restart settings.
func TestFrontSettingsAreRestartSettings(t *testing.T) {
	a, b := config.Defaults(), config.Defaults()
	b.IdleParkAfter = 0
	c := RestartSettingsOf(a).Changes(RestartSettingsOf(b))
	if len(c) != 1 || c[0].Variable != "GATEWAY_IDLE_PARK_AFTER" || c[0].Running != "1s" || c[0].Configured != "0s" {
		t.Fatalf("changes %+v", c)
	}
}

// reloadableVariables take effect on reload: Build reads them (or the reload re-reads the files they name).
// GATEWAY_CONFIG comes from the environment, which a reload does not read again.
var reloadableVariables = []string{
	"GATEWAY_PRIMARY", "GATEWAY_DELEGATES", "GATEWAY_PASS_STATUS", "GATEWAY_ROUTES", "GATEWAY_TRUSTED_PROXIES",
	"GATEWAY_CONFIG", "GATEWAY_MAX_BODY_SIZE", "GATEWAY_CASCADE_BODY_LIMIT", "GATEWAY_UPSTREAM_TIMEOUT",
	"GATEWAY_BODY_TIMEOUT", "GATEWAY_UPSTREAM_READ_TIMEOUT", "GATEWAY_MAX_RESPONSE_HEADER_SIZE", "GATEWAY_TLS_KEY",
	"GATEWAY_ACME_NAMES", "GATEWAY_STAGE", "GATEWAY_MIDDLEWARE", "GATEWAY_RUN", "GATEWAY_PROCFILE",
}

// A new variable must be declared either reloadable (above) or restart-only (RestartSettings): none is
// forgotten by the reload's restart warning.
func TestEveryVariableIsReloadableOrRestartOnly(t *testing.T) {
	known := map[string]string{}
	for _, v := range reloadableVariables {
		known[v] = "reloadable"
	}
	for _, v := range restartVariables(reflect.TypeOf(RestartSettings{})) {
		if known[v] != "" {
			t.Errorf("%s is both reloadable and restart-only", v)
		}
		known[v] = "restart"
	}
	for _, v := range config.Variables() {
		if known[v] == "" {
			t.Errorf("%s is neither in RestartSettings nor reloadable: say which", v)
		}
	}
}
