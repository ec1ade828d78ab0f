package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMiddlewareConfig(t *testing.T) {
	file := func(s string) func(string) ([]byte, error) {
		return func(string) ([]byte, error) { return []byte(s), nil }
	}
	tests := []struct {
		name    string
		env     map[string]string
		file    string
		global  MiddlewareList
		source  string
		route   MiddlewareList
		wantErr string
	}{
		{"the compact form in the environment", map[string]string{"GATEWAY_MIDDLEWARE": "gzip,ratelimit(rate=100/1m)"}, "",
			MiddlewareList{{Name: "gzip"}, {Name: "ratelimit", Params: map[string]string{"rate": "100/1m"}}}, "GATEWAY_MIDDLEWARE", nil, ""},
		{"a bad compact form names the variable", map[string]string{"GATEWAY_MIDDLEWARE": "gzip(min_size=1"}, "", nil, "", nil, `GATEWAY_MIDDLEWARE="gzip(min_size=1": invalid middleware list`},
		{"YAML lists with typed scalars as strings, per route too", map[string]string{"GATEWAY_CONFIG": "g.yaml"}, `
middleware:
  - name: security_headers
    params: {hsts_max_age: 600, hsts_preload: true}
  - gzip
routes:
  - pattern: /app/
    app: http://127.0.0.1:9
    middleware: [{name: body_limit, params: {max: 1MiB}}]
`, MiddlewareList{{Name: "security_headers", Params: map[string]string{"hsts_max_age": "600", "hsts_preload": "true"}}, {Name: "gzip"}}, "g.yaml:2: middleware",
			MiddlewareList{{Name: "body_limit", Params: map[string]string{"max": "1MiB"}}}, ""},
		{"the environment overrides the file", map[string]string{"GATEWAY_CONFIG": "g.yaml", "GATEWAY_MIDDLEWARE": "cors(origins=*)"}, "middleware: gzip\n",
			MiddlewareList{{Name: "cors", Params: map[string]string{"origins": "*"}}}, "GATEWAY_MIDDLEWARE", nil, ""},
		{"an unknown key in a YAML item is an error", map[string]string{"GATEWAY_CONFIG": "g.yaml"}, "middleware:\n  - {name: gzip, parms: {}}\n", nil, "", nil, `unknown key "parms"`},
		{"GATEWAY_ROUTES still works without middleware", map[string]string{"GATEWAY_ROUTES": "/api/=http://127.0.0.1:9"}, "", nil, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.env, file(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.global, cfg.Middleware); d != "" || cfg.MiddlewareSource != tt.source {
				t.Fatalf("global (source %q) -want +got:\n%s", cfg.MiddlewareSource, d)
			}
			var route MiddlewareList
			if len(cfg.Routes) > 0 {
				route = cfg.Routes[0].Middleware
			}
			if d := cmp.Diff(tt.route, route); d != "" {
				t.Fatalf("route -want +got:\n%s", d)
			}
		})
	}
}
