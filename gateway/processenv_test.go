package gateway

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// A param. that names a process-level setting (DJANGO_SETTINGS_MODULE and the like) warns, saying what
// to do instead; an ordinary param. does not.
func TestProcessLevelParamsWarn(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings of the one warning; nil: no warning
	}{
		{"DJANGO_SETTINGS_MODULE on a uwsgi route", map[string]string{"GATEWAY_ROUTES": "b.example.com/=uwsgi://127.0.0.1:3031?param.DJANGO_SETTINGS_MODULE=site.settings_b"},
			[]string{`GATEWAY_ROUTES: route b.example.com/: app "uwsgi://127.0.0.1:3031?param.DJANGO_SETTINGS_MODULE=site.settings_b": param.DJANGO_SETTINGS_MODULE does nothing`,
				"Django reads it from os.environ", "one app server per value with DJANGO_SETTINGS_MODULE in its environment",
				`os.environ["DJANGO_SETTINGS_MODULE"] = "site.settings_b"`, "param.UWSGI_APPID", "docs/django-sites.md"}},
		{"DJANGO_SETTINGS_MODULE on an scgi primary: no uWSGI advice", map[string]string{"GATEWAY_PRIMARY": "scgi://127.0.0.1:4000?param.DJANGO_SETTINGS_MODULE=site.settings"},
			[]string{"GATEWAY_PRIMARY: app", "param.DJANGO_SETTINGS_MODULE does nothing", "one app server per value"}},
		{"PYTHONPATH on a fastcgi route", map[string]string{"GATEWAY_ROUTES": "/py/=fastcgi://127.0.0.1:9000?param.PYTHONPATH=/srv"},
			[]string{"param.PYTHONPATH does nothing: the Python interpreter reads it when it starts"}},
		{"an ordinary param (PHP reads FastCGI params per request)", map[string]string{"GATEWAY_ROUTES": "/php/=fastcgi://127.0.0.1:9000?param.APP_ENV=prod"}, nil},
		{"UWSGI_SETENV itself", map[string]string{"GATEWAY_ROUTES": "/a/=uwsgi://127.0.0.1:3031?param.UWSGI_SETENV=DJANGO_SETTINGS_MODULE%3Da.settings"}, nil},
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
			if tt.want == nil {
				if len(g.Warnings) != 0 {
					t.Fatalf("warnings %q, want none", g.Warnings)
				}
				return
			}
			if len(g.Warnings) != 1 {
				t.Fatalf("warnings %q, want one", g.Warnings)
			}
			for _, w := range tt.want {
				if !strings.Contains(g.Warnings[0], w) {
					t.Errorf("warning lacks %q:\n%s", w, g.Warnings[0])
				}
			}
		})
	}
}
