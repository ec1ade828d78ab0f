package config

import (
	"strings"
	"testing"
)

func TestAdminPprof(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr string
	}{
		{name: "pprof is off by default", want: false},
		{name: "pprof is turned on on the default admin listener", env: map[string]string{"GATEWAY_ADMIN_PPROF": "true"}, want: true},
		{name: "pprof without an admin listener names both variables", env: map[string]string{"GATEWAY_ADMIN_PPROF": "true", "GATEWAY_ADMIN_ADDR": ""}, wantErr: "GATEWAY_ADMIN_PPROF=true: the profiles are served on the admin listener, but GATEWAY_ADMIN_ADDR is empty"},
		{name: "pprof off without an admin listener is fine", env: map[string]string{"GATEWAY_ADMIN_PPROF": "false", "GATEWAY_ADMIN_ADDR": ""}, want: false},
		{name: "a value that is not a boolean names the variable", env: map[string]string{"GATEWAY_ADMIN_PPROF": "maybe"}, wantErr: "GATEWAY_ADMIN_PPROF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(tt.env, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.AdminPprof != tt.want {
				t.Errorf("AdminPprof = %v, want %v", cfg.AdminPprof, tt.want)
			}
		})
	}
}
