package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

func TestWarningsForAUnixSocketInAMissingDirectory(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings, one per warning
	}{
		{"a socket not created yet in an existing directory: no warning", map[string]string{"GATEWAY_PRIMARY": "unix://" + dir + "/app.sock"}, nil},
		{"an HTTP app's socket in a missing directory", map[string]string{"GATEWAY_PRIMARY": "unix:///nonexistent/run/app.sock"},
			[]string{`GATEWAY_PRIMARY: app "unix:///nonexistent/run/app.sock": the directory /nonexistent/run of the unix socket /nonexistent/run/app.sock does not exist (no such file or directory)`}},
		{"a route's uwsgi socket in a missing directory names the route", map[string]string{"GATEWAY_ROUTES": "/shop/=uwsgi+unix:///nonexistent/uwsgi/shop.sock"},
			[]string{`GATEWAY_ROUTES: route /shop/: app "uwsgi+unix:///nonexistent/uwsgi/shop.sock": the directory /nonexistent/uwsgi`}},
		{"each instance is checked", map[string]string{"GATEWAY_PRIMARY": "unix://" + dir + "/a.sock|unix:///nonexistent/b.sock"},
			[]string{"the unix socket /nonexistent/b.sock"}},
		{"a socket below a file", map[string]string{"GATEWAY_DELEGATES": "fastcgi+unix://" + file + "/fpm.sock", "GATEWAY_PRIMARY": "status:404"},
			[]string{"is not a directory"}},
		{"a TCP app: no warning", map[string]string{"GATEWAY_PRIMARY": "uwsgi://127.0.0.1:3031"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(tt.env, nil)
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

func TestTheReadyOptionMarksAnAppNotForReadiness(t *testing.T) {
	cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": "uwsgi://127.0.0.1:3031?ready=false",
		"GATEWAY_ROUTES": "/a/=http://127.0.0.1:3000,/b/=fastcgi://127.0.0.1:9000?ready=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got := map[string]bool{}
	for _, a := range g.Apps {
		got[a.Role+" "+a.Pattern] = a.NotForReadiness
	}
	if !got["primary *"] || got["route /a/"] || got["route /b/"] || len(got) != 3 {
		t.Fatalf("NotForReadiness by app: %v", got)
	}
	cfg.Primary = "uwsgi://127.0.0.1:3031?ready=maybe"
	if _, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)}); err == nil || !strings.Contains(err.Error(), `option ready="maybe"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestPrefixHeaderOption(t *testing.T) {
	tests := []struct {
		name, routes, wantErr string
		strip                 bool
	}{
		{name: "script_name on an HTTP app", routes: "/flask/=http://127.0.0.1:8000?prefix_header=script_name"},
		{name: "x-forwarded-prefix strips the prefix", routes: "/flask/=http://127.0.0.1:8000?prefix_header=X-Forwarded-Prefix", strip: true},
		{name: "x-forwarded-prefix with strip_prefix", routes: "/flask/=http://127.0.0.1:8000?prefix_header=x-forwarded-prefix&strip_prefix=true", strip: true},
		{name: "script_name refuses strip_prefix", routes: "/flask/=http://127.0.0.1:8000?prefix_header=script_name&strip_prefix=true", wantErr: "prefix_header=script_name sends the whole path"},
		{name: "x-forwarded-prefix refuses strip_prefix=false", routes: "/flask/=http://127.0.0.1:8000?prefix_header=x-forwarded-prefix&strip_prefix=false", wantErr: "cannot go with strip_prefix=false"},
		{name: "an unknown form is refused with the choices", routes: "/flask/=http://127.0.0.1:8000?prefix_header=x-script-name", wantErr: `prefix_header="x-script-name": expected x-forwarded-prefix`},
		{name: "mount-aware apps have SCRIPT_NAME already", routes: "/shop/=uwsgi://127.0.0.1:3031?prefix_header=script_name", wantErr: "does not apply to uwsgi apps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(map[string]string{"GATEWAY_ROUTES": tt.routes}, nil)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			for _, r := range g.Routes {
				if r.Pattern != "*" && r.StripPrefix != tt.strip {
					t.Errorf("route %s: strip_prefix %v, want %v", r.Pattern, r.StripPrefix, tt.strip)
				}
			}
		})
	}
	cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": "http://127.0.0.1:8000?prefix_header=script_name"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)}); err == nil || !strings.Contains(err.Error(), "applies to routes") {
		t.Fatalf("primary: err = %v", err)
	}
}
