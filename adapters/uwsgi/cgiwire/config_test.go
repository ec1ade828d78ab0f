package cgiwire

import (
	"net/url"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
)

func TestParseTargetTimeouts(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		gateway time.Duration
		want    time.Duration
	}{
		{name: "without option or gateway default the timeout is 60s", want: DefaultTimeout},
		{name: "the gateway's upstream timeout is the default", gateway: 7 * time.Second, want: 7 * time.Second},
		{name: "the app's option beats the gateway's default", query: "timeout=2s", gateway: 7 * time.Second, want: 2 * time.Second},
		{name: "timeout=0 disables the limit", query: "timeout=0s", gateway: 7 * time.Second, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse("uwsgi://127.0.0.1:1")
			o, err := adapters.ParseOptions(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseTarget(adapters.Target{Raw: "x", URL: u, Options: o, DefaultTimeout: tt.gateway}, "uwsgi")
			if err != nil || c.Timeout != tt.want {
				t.Fatalf("timeout %v (%v), want %v", c.Timeout, err, tt.want)
			}
		})
	}
}
