package config

import (
	"strings"
	"testing"
)

func TestConnectionLimits(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		wantMax       int
		wantPerClient int
		wantErr       string // substring of the error; "" for none
	}{
		{name: "the defaults are 8192 in total and no per-client limit", wantMax: 8192},
		{name: "both limits are read from the environment", env: map[string]string{"GATEWAY_MAX_CONNS": "500", "GATEWAY_MAX_CONNS_PER_CLIENT": "64"}, wantMax: 500, wantPerClient: 64},
		{name: "zero turns the total limit off", env: map[string]string{"GATEWAY_MAX_CONNS": "0", "GATEWAY_MAX_CONNS_PER_CLIENT": "1000000"}, wantPerClient: 1000000},
		{name: "a negative total is refused naming the variable", env: map[string]string{"GATEWAY_MAX_CONNS": "-1"}, wantErr: "GATEWAY_MAX_CONNS=-1: expected a number of connections"},
		{name: "a negative per-client limit is refused naming the variable", env: map[string]string{"GATEWAY_MAX_CONNS_PER_CLIENT": "-5"}, wantErr: "GATEWAY_MAX_CONNS_PER_CLIENT=-5: expected a number of connections"},
		{name: "a per-client limit above the total is refused", env: map[string]string{"GATEWAY_MAX_CONNS": "10", "GATEWAY_MAX_CONNS_PER_CLIENT": "11"}, wantErr: "GATEWAY_MAX_CONNS_PER_CLIENT=11: expected at most GATEWAY_MAX_CONNS=10"},
		{name: "a value that is not a number names the variable", env: map[string]string{"GATEWAY_MAX_CONNS": "lots"}, wantErr: `GATEWAY_MAX_CONNS="lots"`},
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
			if cfg.MaxConns != tt.wantMax || cfg.MaxConnsPerClient != tt.wantPerClient {
				t.Errorf("MaxConns, MaxConnsPerClient = %d, %d, want %d, %d", cfg.MaxConns, cfg.MaxConnsPerClient, tt.wantMax, tt.wantPerClient)
			}
		})
	}
}

func TestConnectionLimitsFromFile(t *testing.T) {
	read := func(string) ([]byte, error) { return []byte("max_conns: 300\nmax_conns_per_client: 30\n"), nil }
	cfg, err := Load(map[string]string{"GATEWAY_CONFIG": "g.yaml"}, read)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConns != 300 || cfg.MaxConnsPerClient != 30 {
		t.Errorf("from the file: %d, %d, want 300, 30", cfg.MaxConns, cfg.MaxConnsPerClient)
	}
}
