package gateway

import (
	"io"
	"log/slog"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestBuildSaysWhichAppOfAMigrationIsNewAndWhichOld checks BuiltApp.Side, which /readyz prints: both apps
// of a migrating route are the route's, so only Side tells the new one from the old one.
func TestBuildSaysWhichAppOfAMigrationIsNewAndWhichOld(t *testing.T) {
	type app struct{ Name, Role, Pattern, Side string }
	tests := []struct {
		name string
		env  map[string]string
		want []app
	}{
		{
			name: "a route with a stage marks its app new and its old app old",
			env: map[string]string{
				"GATEWAY_PRIMARY": "status:200",
				"GATEWAY_ROUTES":  "/shop/=status:201?stage=canary&canary=10&old=" + url.QueryEscape("status:202"),
			},
			want: []app{{"status:200", "primary", "*", ""}, {"status:201", "route", "/shop/", "new"}, {"status:202", "route", "/shop/", "old"}},
		},
		{
			name: "a route without a stage has no side",
			env:  map[string]string{"GATEWAY_ROUTES": "/shop/=status:201"},
			want: []app{{"status:201", "route", "/shop/", ""}},
		},
		{
			name: "GATEWAY_STAGE marks the primary new and the first delegate old, not the delegates after it",
			env: map[string]string{
				"GATEWAY_PRIMARY":   "status:200",
				"GATEWAY_DELEGATES": "status:201,status:202",
				"GATEWAY_STAGE":     "shadow",
			},
			want: []app{{"status:200", "primary", "*", "new"}, {"status:201", "delegate", "*", "old"}, {"status:202", "delegate", "*", ""}},
		},
		{
			name: "a primary and delegates without a stage have no side",
			env:  map[string]string{"GATEWAY_PRIMARY": "status:200", "GATEWAY_DELEGATES": "status:201"},
			want: []app{{"status:200", "primary", "*", ""}, {"status:201", "delegate", "*", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.env["GATEWAY_ADMIN_ADDR"] = ""
			cfg, err := config.Load(tt.env, nil)
			if err != nil {
				t.Fatal(err)
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			var got []app
			for _, a := range g.Apps {
				got = append(got, app{a.Name, a.Role, a.Pattern, a.Side})
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("apps (-want +got):\n%s", d)
			}
		})
	}
}

// TestAMigrationSideThatServesNoClientDoesNotCountForReadiness checks which apps of a migration /readyz
// ignores: the new app until retired (a new app not yet deployed at legacy must not take the gateway out
// of its load balancer, nor a new app down at canary or primary, whose requests the old app serves) and
// the old app once retired (a Django shut down after its routes were retired).
func TestAMigrationSideThatServesNoClientDoesNotCountForReadiness(t *testing.T) {
	tests := []struct {
		stage      string
		newIgnored bool
		oldIgnored bool
	}{
		{stage: "legacy", newIgnored: true},
		{stage: "shadow", newIgnored: true},
		{stage: "canary", newIgnored: true},
		{stage: "primary", newIgnored: true},
		{stage: "retired", oldIgnored: true},
	}
	for _, tt := range tests {
		for _, pair := range []bool{false, true} {
			name := "route at " + tt.stage
			env := map[string]string{"GATEWAY_ADMIN_ADDR": ""}
			if pair {
				name = "GATEWAY_STAGE=" + tt.stage
				env["GATEWAY_PRIMARY"], env["GATEWAY_DELEGATES"], env["GATEWAY_STAGE"] = "http://127.0.0.1:1?name=new", "http://127.0.0.1:2?name=old", tt.stage+"?canary=10"
			} else {
				env["GATEWAY_ROUTES"] = "/shop/=http://127.0.0.1:1?name=new&canary=10&stage=" + tt.stage + "&old=" + url.QueryEscape("http://127.0.0.1:2?name=old")
			}
			t.Run(name, func(t *testing.T) {
				cfg, err := config.Load(env, nil)
				if err != nil {
					t.Fatal(err)
				}
				logger := slog.New(slog.NewTextHandler(io.Discard, nil))
				g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				ignored := map[string]bool{}
				for _, a := range g.Apps {
					ignored[a.Name] = a.NotForReadiness
				}
				if ignored["new"] != tt.newIgnored || ignored["old"] != tt.oldIgnored {
					t.Errorf("not for readiness: new %v, old %v; want new %v, old %v", ignored["new"], ignored["old"], tt.newIgnored, tt.oldIgnored)
				}
			})
		}
	}

	// Each side at a stage that counts it: the old app at primary, the new app once retired.
	for _, stage := range []string{"primary", "retired"} {
		t.Run("ready=false takes an app out of readiness at "+stage, func(t *testing.T) {
			cfg, err := config.Load(map[string]string{"GATEWAY_ADMIN_ADDR": "",
				"GATEWAY_ROUTES": "/shop/=http://127.0.0.1:1?name=new&ready=false&stage=" + stage + "&old=" + url.QueryEscape("http://127.0.0.1:2?name=old&ready=false")}, nil)
			if err != nil {
				t.Fatal(err)
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			for _, a := range g.Apps {
				if !a.NotForReadiness {
					t.Errorf("%s (%s) counts for readiness despite ready=false", a.Name, a.Side)
				}
			}
		})
	}
}
