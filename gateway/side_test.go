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
