package config

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/procs"
)

func loadWith(t *testing.T, env map[string]string, files map[string]string) (Config, error) {
	t.Helper()
	return Load(env, func(p string) ([]byte, error) {
		if s, ok := files[p]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	})
}

func TestRunAppsFromTheEnvironment(t *testing.T) {
	cfg, err := loadWith(t, map[string]string{
		"GATEWAY_RUN": `site-a(dir=/srv/portal, env.DJANGO_SETTINGS_MODULE=portal.settings, inherit=PATH LANG): gunicorn --bind unix:{socket} portal.wsgi;` +
			`site-b(env.DJANGO_SETTINGS_MODULE=portal.settings_b, env.NOTE="a, b (c)", instances=2, start_timeout=5s, stop_timeout=2s, user=www-data, group=www-data, on_demand=true, idle_timeout=10m): gunicorn --bind unix:{socket} 'portal.wsgi'
			web(procfile=web)`,
		"GATEWAY_PROCFILE": "Procfile",
		"GATEWAY_ROUTES":   "a.example.test/=unix://{socket}?run=site-a,b.example.test/=unix://{socket}?run=site-b&timeout=5s,/node/=http://{addr}?run=web",
	}, map[string]string{"Procfile": "web: node server.js --port $PORT\n"})
	if err != nil {
		t.Fatal(err)
	}
	want := RunList{
		{Name: "site-a", Command: []string{"gunicorn", "--bind", "unix:{socket}", "portal.wsgi"}, Dir: "/srv/portal",
			Env: map[string]string{"DJANGO_SETTINGS_MODULE": "portal.settings"}, Inherit: []string{"PATH", "LANG"}, Source: "GATEWAY_RUN"},
		{Name: "site-b", Command: []string{"gunicorn", "--bind", "unix:{socket}", "portal.wsgi"}, Instances: 2,
			Env: map[string]string{"DJANGO_SETTINGS_MODULE": "portal.settings_b", "NOTE": "a, b (c)"}, StartTimeout: Duration(5 * time.Second), StopTimeout: Duration(2 * time.Second), User: "www-data", Group: "www-data", OnDemand: true, IdleTimeout: Duration(10 * time.Minute), Source: "GATEWAY_RUN"},
		{Name: "web", Procfile: "web", Command: []string{"/bin/sh", "-c", "exec node server.js --port $PORT"}, Source: "GATEWAY_RUN"},
	}
	if d := cmp.Diff(want, cfg.Run); d != "" {
		t.Fatalf("run apps (-want +got):\n%s", d)
	}
	specs := cfg.RunSpecs()
	if specs[0].Network != "unix" || specs[2].Network != "tcp" {
		t.Fatalf("networks %q %q", specs[0].Network, specs[2].Network)
	}
	resolved := cfg.WithRunAddrs(func(name string) []procs.Addr {
		switch name {
		case "site-b":
			return []procs.Addr{{Network: "unix", Address: "/run/b.0.sock"}, {Network: "unix", Address: "/run/b.1.sock"}}
		case "web":
			return []procs.Addr{{Network: "tcp", Address: "127.0.0.1:4000"}}
		}
		return []procs.Addr{{Network: "unix", Address: "/run/a.0.sock"}}
	})
	var apps []string
	for _, r := range resolved.Routes {
		apps = append(apps, r.App)
	}
	wantApps := []string{"unix:///run/a.0.sock?name=site-a", "unix:///run/b.0.sock|unix:///run/b.1.sock?name=site-b&ready=false&timeout=5s", "http://127.0.0.1:4000?name=web"}
	if d := cmp.Diff(wantApps, apps); d != "" {
		t.Fatalf("resolved apps (-want +got):\n%s", d)
	}
	if cfg.Routes[0].App != "unix://{socket}?run=site-a" {
		t.Fatal("WithRunAddrs changed the configuration it was called on")
	}
}

func TestRunAppBesideItsRouteInTheFile(t *testing.T) {
	yaml := `
primary: uwsgi+unix://{socket}?run=legacy
run:
  legacy:
    command: [uwsgi, --socket, "{socket}", --module, legacy.wsgi, --die-on-term]
    env: {DJANGO_SETTINGS_MODULE: legacy.settings}
routes:
  - pattern: /blog/
    app: unix://{socket}
    run:
      command: gunicorn --bind unix:{socket} blog.wsgi
      dir: /srv/blog
      env:
        DJANGO_SETTINGS_MODULE: blog.settings
      inherit: [PATH]
      instances: 2
`
	cfg, err := loadWith(t, map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, map[string]string{"gw.yaml": yaml})
	if err != nil {
		t.Fatal(err)
	}
	apps := cfg.RunApps()
	if len(apps) != 2 || apps[0].Name != "legacy" || apps[0].Source != "gw.yaml: run.legacy" {
		t.Fatalf("%+v", apps)
	}
	blog := apps[1]
	if blog.Name != "blog" || blog.Instances != 2 || blog.Dir != "/srv/blog" || blog.Env["DJANGO_SETTINGS_MODULE"] != "blog.settings" ||
		strings.Join(blog.Command, " ") != "gunicorn --bind unix:{socket} blog.wsgi" || blog.Source != "gw.yaml:8: routes[0].run" {
		t.Fatalf("%+v", blog)
	}
	if cfg.Routes[0].App != "unix://{socket}?run=blog" {
		t.Fatalf("route app %q", cfg.Routes[0].App)
	}
}

func TestRunConfigurationErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		yaml  string
		files map[string]string
		want  []string
	}{
		{"an app without a command", map[string]string{"GATEWAY_RUN": "blog(dir=/srv)", "GATEWAY_ROUTES": "/=unix://{socket}?run=blog"}, "", nil,
			[]string{`GATEWAY_RUN: run app "blog" has no command`}},
		{"a shell construct without a shell", map[string]string{"GATEWAY_RUN": "blog: gunicorn -b :$PORT app"}, "", nil,
			[]string{"GATEWAY_RUN", "run app blog: command", "needs a shell", "[sh, -c,"}},
		{"an unknown option", map[string]string{"GATEWAY_RUN": "blog(workers=2): gunicorn app"}, "", nil,
			[]string{`run app blog: unknown option "workers"`}},
		{"a misspelt option gets the one it resembles", map[string]string{"GATEWAY_RUN": "blog(instnces=2): gunicorn app"}, "", nil,
			[]string{`run app blog: unknown option "instnces"; did you mean instances? (known: dir, instances,`}},
		{"a route naming an app nobody declared", map[string]string{"GATEWAY_RUN": "blog: gunicorn app", "GATEWAY_ROUTES": "/=unix://{socket}?run=blgo"}, "", nil,
			[]string{"option run=blgo names no run app (declared: blog)", `run app "blog" is used by no app URL`}},
		{"an app URL without the address", map[string]string{"GATEWAY_RUN": "blog: gunicorn app", "GATEWAY_ROUTES": "/=unix:///tmp/x.sock?run=blog"}, "", nil,
			[]string{"holds no address placeholder"}},
		{"a misspelt placeholder", map[string]string{"GATEWAY_RUN": "blog: gunicorn app", "GATEWAY_ROUTES": "/=http://{adr}?run=blog"}, "", nil,
			[]string{"unknown placeholder {adr}"}},
		{"several instances of a kind that is not balanced", map[string]string{"GATEWAY_RUN": "blog(instances=2): uwsgi app", "GATEWAY_ROUTES": "/=uwsgi+unix://{socket}?run=blog"}, "", nil,
			[]string{`run app "blog": instances=2, but uwsgi+unix apps are not balanced`}},
		{"more instances than a machine runs", map[string]string{"GATEWAY_RUN": "web(instances=100000): node app.js", "GATEWAY_ROUTES": "/=http://{addr}?run=web"}, "", nil,
			[]string{`instances="100000": expected a whole number from 1 to 256`}},
		{"a Procfile entry without a Procfile", map[string]string{"GATEWAY_RUN": "web(procfile=web)", "GATEWAY_ROUTES": "/=http://{addr}?run=web"}, "", nil,
			[]string{"no Procfile is set: set GATEWAY_PROCFILE"}},
		{"a Procfile without the entry", map[string]string{"GATEWAY_RUN": "web(procfile=wbe)", "GATEWAY_PROCFILE": "Procfile", "GATEWAY_ROUTES": "/=http://{addr}?run=web"}, "",
			map[string]string{"Procfile": "web: node s.js\n"}, []string{"procfile=wbe: Procfile has no such entry (it has: web)"}},
		{"an unknown key in a route's run", nil, "routes:\n  - pattern: /a/\n    app: unix://{socket}\n    run:\n      comand: [x]\n", nil,
			[]string{"gw.yaml:5: routes[0].run:", "unknown key comand; did you mean command?"}},
		{"two apps asking for the same port", map[string]string{"GATEWAY_RUN": "a(port=3000): node a.js; b(port=3000): node b.js", "GATEWAY_ROUTES": "/a/=http://{addr}?run=a,/b/=http://{addr}?run=b"}, "", nil,
			[]string{`run apps "a" and "b" (GATEWAY_RUN) both ask for port 3000`}},
		{"an app on the gateway's own port", map[string]string{"GATEWAY_RUN": "a(port=8080): node a.js", "GATEWAY_ROUTES": "/a/=http://{addr}?run=a"}, "", nil,
			[]string{`run app "a" asks for port 8080, where the gateway listens (GATEWAY_ADDR=:8080)`}},
		{"an on-demand app on a cascading route", map[string]string{"GATEWAY_RUN": "lazy(on_demand=true): gunicorn app", "GATEWAY_ROUTES": "/a/=unix://{socket}?run=lazy&cascade=true"}, "", nil,
			[]string{"run app lazy is on_demand, which needs it as the app of a route without stage or cascade"}},
		{"an on-demand primary", map[string]string{"GATEWAY_RUN": "lazy(on_demand=true): gunicorn app", "GATEWAY_PRIMARY": "unix://{socket}?run=lazy"}, "", nil,
			[]string{"GATEWAY_PRIMARY: app", "run app lazy is on_demand, which needs it as the app of a route"}},
		{"a bad on_demand", map[string]string{"GATEWAY_RUN": "lazy(on_demand=sometimes): gunicorn app"}, "", nil,
			[]string{`on_demand="sometimes": expected true or false`}},
		{"one name declared twice", nil, "run:\n  a:\n    command: [x]\nroutes:\n  - pattern: /a/\n    app: unix://{socket}\n    run: {name: a, command: [y]}\n", nil,
			[]string{`gw.yaml:5: routes[0].run: run app "a" is also declared at gw.yaml: run.a`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			files := map[string]string{}
			for k, v := range tc.files {
				files[k] = v
			}
			if tc.yaml != "" {
				env = map[string]string{"GATEWAY_CONFIG": "gw.yaml"}
				files["gw.yaml"] = tc.yaml
			}
			_, err := loadWith(t, env, files)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%s", w, err)
				}
			}
		})
	}
}

// A route shares its requests with another app under a stage or with cascade on; cascade=false (or a
// route without either) keeps them to its own app, which the route may then start on demand.
func TestSharesItsRoute(t *testing.T) {
	for app, want := range map[string]bool{
		"unix://{socket}?run=a":                   false,
		"unix://{socket}?run=a&cascade=false":     false,
		"unix://{socket}?run=a&cascade=0":         false,
		"unix://{socket}?run=a&cascade=true":      true,
		"unix://{socket}?cascade=yes&run=a":       true,
		"unix://{socket}?run=a&stage=canary":      true,
		"unix://{socket}?run=a&stage=retired&x=1": true,
		"unix://{socket}?run=a&cascade=sometimes": true, // not a switch: the plan refuses it; not on demand meanwhile
		"http://{addr}?timeout=5s&name=cascade":   false,
	} {
		if got := SharesItsRoute(app); got != want {
			t.Errorf("SharesItsRoute(%q) = %v, want %v", app, got, want)
		}
	}
	cfg, err := loadWith(t, map[string]string{"GATEWAY_RUN": "lazy(on_demand=true): gunicorn app",
		"GATEWAY_ROUTES": "/a/=unix://{socket}?run=lazy&cascade=false"}, nil)
	if err != nil || len(cfg.RunApps()) != 1 {
		t.Fatalf("an on-demand app on a route with cascade=false: %v", err)
	}
}

// An entry without a command takes the Procfile entry of its name, with or without options
// (docs/run-apps.md): `web` is web(procfile=web), in GATEWAY_RUN and in a route's run key.
func TestARunAppWithoutACommandTakesItsProcfileEntry(t *testing.T) {
	procfile := map[string]string{"Procfile": "web: node server.js --port $PORT\napi: gunicorn --bind unix:{socket} api.wsgi\nadmin: php-fpm -F\n"}
	cfg, err := loadWith(t, map[string]string{
		"GATEWAY_RUN":      "web(instances=3); api(env.DJANGO_SETTINGS_MODULE=api.settings)",
		"GATEWAY_PROCFILE": "Procfile",
		"GATEWAY_ROUTES":   "/=http://{addr}?run=web,/api/=unix://{socket}?run=api",
	}, procfile)
	if err != nil {
		t.Fatal(err)
	}
	want := RunList{
		{Name: "web", Procfile: "web", Command: []string{"/bin/sh", "-c", "exec node server.js --port $PORT"}, Instances: 3, Source: "GATEWAY_RUN"},
		{Name: "api", Procfile: "api", Command: []string{"/bin/sh", "-c", "exec gunicorn --bind unix:{socket} api.wsgi"},
			Env: map[string]string{"DJANGO_SETTINGS_MODULE": "api.settings"}, Source: "GATEWAY_RUN"},
	}
	if d := cmp.Diff(want, cfg.Run); d != "" {
		t.Fatalf("run apps (-want +got):\n%s", d)
	}
	// A name the Procfile lacks says which entries it has.
	_, err = loadWith(t, map[string]string{"GATEWAY_RUN": "worker", "GATEWAY_PROCFILE": "Procfile", "GATEWAY_ROUTES": "/=http://{addr}?run=worker"}, procfile)
	if err == nil || !strings.Contains(err.Error(), "procfile=worker: Procfile has no such entry (it has: web, api, admin)") {
		t.Fatalf("a name the Procfile lacks: %v", err)
	}
}
