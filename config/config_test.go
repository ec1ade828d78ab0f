package config

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/switchyard/switchyard/router"
)

func files(m map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if s, ok := m[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
}

func TestDefaultsApplyWhenNothingIsSet(t *testing.T) {
	cfg, err := Load(map[string]string{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Defaults(), cfg, cmpopts.IgnoreUnexported(Config{})); diff != "" {
		t.Fatalf("defaults changed (-want +got):\n%s", diff)
	}
}

func TestLayering(t *testing.T) {
	file := `
addr: "127.0.0.1:9000"
primary: http://file-primary:8000
delegates: [http://old:9000]
pass_status: [404, 410]
upstream_timeout: 5s
max_body_size: 1MiB
routes:
  - pattern: /api/
    app: http://api:3000
    options: {strip_prefix: "true", timeout: 2s}
`
	tests := []struct {
		name string
		env  map[string]string
		want func(c Config) string
	}{
		{"the file overrides defaults", map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, func(c Config) string {
			return cmp.Diff([]any{"127.0.0.1:9000", "http://file-primary:8000", AppList{"http://old:9000"}, StatusList{404, 410}, Duration(5 * time.Second), Size(1 << 20), "text"},
				[]any{c.Addr, c.Primary, c.Delegates, c.PassStatus, c.UpstreamTimeout, c.MaxBodySize, c.LogFormat})
		}},
		{"route options from the file ride in the app URL", map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, func(c Config) string {
			at := func(line int) Source { return Source{File: "gw.yaml", Line: line, Key: "routes[0]"} }
			keys := map[string]Source{"pattern": at(9), "app": at(10), "options": at(11), "strip_prefix": at(11), "timeout": at(11)}
			return cmp.Diff(RouteList{{Pattern: "/api/", App: "http://api:3000?strip_prefix=true&timeout=2s", Source: "gw.yaml:9: routes[0]", Keys: keys}}, c.Routes)
		}},
		{"a set variable overrides the file, an unset one does not", map[string]string{"GATEWAY_CONFIG": "gw.yaml", "GATEWAY_PRIMARY": "http://env:1"}, func(c Config) string {
			return cmp.Diff([]any{"http://env:1", Duration(5 * time.Second)}, []any{c.Primary, c.UpstreamTimeout})
		}},
		{"GATEWAY_ROUTES replaces the file's routes", map[string]string{"GATEWAY_CONFIG": "gw.yaml", "GATEWAY_ROUTES": "/x/=http://x:1"}, func(c Config) string {
			return cmp.Diff(RouteList{{Pattern: "/x/", App: "http://x:1", Source: "GATEWAY_ROUTES"}}, c.Routes)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.env, files(map[string]string{"gw.yaml": file}))
			if err != nil {
				t.Fatal(err)
			}
			if d := tt.want(cfg); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestErrorsNameTheVariableTheValueAndTheExpectation(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  []string
	}{
		{"a bad duration", map[string]string{"GATEWAY_IDLE_TIMEOUT": "forever"}, nil, []string{`GATEWAY_IDLE_TIMEOUT="forever"`, "such as 10s"}},
		{"a bad size", map[string]string{"GATEWAY_MAX_HEADER_SIZE": "-1KiB"}, nil, []string{`GATEWAY_MAX_HEADER_SIZE="-1KiB"`}},
		{"a header limit out of range", map[string]string{"GATEWAY_MAX_HEADER_SIZE": "10"}, nil, []string{"GATEWAY_MAX_HEADER_SIZE=10", "1KiB to 16MiB"}},
		{"a route without an app", map[string]string{"GATEWAY_ROUTES": "/a/"}, nil, []string{"GATEWAY_ROUTES", `"/a/"`, "PATTERN=APP"}},
		{"delegates without a primary", map[string]string{"GATEWAY_DELEGATES": "http://x"}, nil, []string{"GATEWAY_DELEGATES", "need a primary"}},
		{"a missing file", map[string]string{"GATEWAY_CONFIG": "nope.yaml"}, nil, []string{`GATEWAY_CONFIG="nope.yaml"`, "cannot read"}},
		{"an unknown key in the file", map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, map[string]string{"gw.yaml": "primary: http://x\nprimery: http://y\n"}, []string{`gw.yaml:2: primery: unknown key; did you mean primary?`}},
		{"a listen port out of range", map[string]string{"GATEWAY_ADDR": "127.0.0.1:99999"}, nil, []string{`GATEWAY_ADDR="127.0.0.1:99999": expected host:port with a port from 0 to 65535`}},
		{"an admin port out of range", map[string]string{"GATEWAY_ADMIN_ADDR": "127.0.0.1:70000"}, nil, []string{`GATEWAY_ADMIN_ADDR="127.0.0.1:70000": expected host:port with a port from 0 to 65535`}},
		{"an unknown variable", map[string]string{"GATEWAY_TIMEOUT": "1s"}, nil, []string{"GATEWAY_TIMEOUT: unknown variable"}},
		{"a misspelt variable gets a suggestion", map[string]string{"GATEWAY_PRIMRY": "http://x"}, nil, []string{"GATEWAY_PRIMRY: unknown variable; did you mean GATEWAY_PRIMARY? (known: "}},
		{"a variable in the wrong case gets a suggestion", map[string]string{"GATEWAY_log_level": "debug"}, nil, []string{"GATEWAY_log_level: unknown variable; did you mean GATEWAY_LOG_LEVEL?"}},
		{"every problem at once", map[string]string{"GATEWAY_LOG_LEVEL": "loud", "GATEWAY_LOG_FORMAT": "xml", "GATEWAY_ADDR": "8080"}, nil,
			[]string{"GATEWAY_LOG_LEVEL", "GATEWAY_LOG_FORMAT", "GATEWAY_ADDR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.env, files(tt.files))
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want Errors", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestListsKeepCommasInsideOptions(t *testing.T) {
	var r RouteList
	if err := r.UnmarshalText([]byte("/api/=http://a:1?cors_origins=x,y,admin.example.com/=status:403,*.example.com/shop/=http://b:2")); err != nil {
		t.Fatal(err)
	}
	want := RouteList{{Pattern: "/api/", App: "http://a:1?cors_origins=x,y"}, {Pattern: "admin.example.com/", App: "status:403"}, {Pattern: "*.example.com/shop/", App: "http://b:2"}}
	if d := cmp.Diff(want, r); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	var a AppList
	if err := a.UnmarshalText([]byte("http://a:1?x=1,2,unix:///run/b.sock")); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(AppList{"http://a:1?x=1,2", "unix:///run/b.sock"}, a); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func FuzzRouteList(f *testing.F) {
	for _, s := range []string{"/api/=http://a:1?strip_prefix=true,/b/=unix:///s", "h.example.com/=status:403", "=", ",,,", "/a/=x?y=1,2", "0,0 =="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var r RouteList
		if err := r.UnmarshalText([]byte(s)); err != nil {
			return
		}
		for _, rt := range r {
			if rt.Pattern == "" || rt.App == "" {
				t.Fatalf("%q parsed into an empty route %+v", s, rt)
			}
			if _, err := router.ParsePattern(rt.Pattern); err != nil || !schemeStart.MatchString(rt.App) {
				return // the plan refuses it; only valid routes must survive printing
			}
		}
		// Printing and re-reading valid routes gives the same routes.
		parts := make([]string, len(r))
		for i, rt := range r {
			parts[i] = rt.String()
		}
		var again RouteList
		if err := again.UnmarshalText([]byte(strings.Join(parts, ","))); err != nil || len(again) != len(r) {
			t.Fatalf("%q -> %v does not re-read (%v, %d routes)", s, parts, err, len(again))
		}
	})
}

func FuzzSize(f *testing.F) {
	for _, s := range []string{"0", "64KiB", "10MB", "1.5GiB", "unlimited", "-1", "9999999999999TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var z Size
		if err := z.UnmarshalText([]byte(s)); err != nil {
			return
		}
		if z < 0 {
			t.Fatalf("%q parsed to a negative size %d", s, z)
		}
		b, _ := z.MarshalText()
		var again Size
		if err := again.UnmarshalText(b); err != nil || again != z {
			t.Fatalf("%q -> %d -> %q -> %d (%v)", s, z, b, again, err)
		}
	})
}

func TestAnEmptyShadowHeadersListSurvivesTheFile(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"an empty YAML list is kept as an empty option", "shadow_headers: []", "shadow_headers=&"},
		{"a listed header is kept", "shadow_headers: [Location]", "shadow_headers=Location&"},
		{"no key gives no option", "", "old="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := "routes:\n  - pattern: /api/\n    app: http://new:3000\n    old: http://old:8000\n    stage: shadow\n    " + tc.yaml + "\n"
			cfg, err := Load(map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, func(string) ([]byte, error) { return []byte(file), nil })
			if err != nil {
				t.Fatal(err)
			}
			app := cfg.Routes[0].App
			if !strings.Contains(app, "?"+tc.want) && !strings.Contains(app, "&"+tc.want) {
				t.Fatalf("app = %q; want it to contain %q", app, tc.want)
			}
			if tc.yaml == "" && strings.Contains(app, "shadow_headers") {
				t.Fatalf("app = %q; want no shadow_headers option", app)
			}
		})
	}
}
