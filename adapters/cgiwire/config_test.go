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

func TestParseTargetReadTimeoutAndHeadLimit(t *testing.T) {
	tests := []struct {
		name        string
		query       string
		gateway     time.Duration // Target.ReadTimeout
		gatewayHead int64         // Target.MaxResponseHeaderBytes
		want        time.Duration
		wantHead    int64
	}{
		{name: "without option or gateway setting the stall limit is 60s and the head limit 256 KiB", want: DefaultReadTimeout, wantHead: 256 << 10},
		{name: "the gateway's read timeout and head limit are the defaults", gateway: 7 * time.Second, gatewayHead: 1 << 20, want: 7 * time.Second, wantHead: 1 << 20},
		{name: "a gateway read timeout turned off means no stall limit", gateway: -1, want: 0, wantHead: 256 << 10},
		{name: "the app's read_timeout beats the gateway's", query: "read_timeout=2s", gateway: 7 * time.Second, want: 2 * time.Second, wantHead: 256 << 10},
		{name: "read_timeout=0 turns the limit off", query: "read_timeout=0s", gateway: 7 * time.Second, want: 0, wantHead: 256 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := url.Parse("uwsgi://127.0.0.1:1")
			o, err := adapters.ParseOptions(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseTarget(adapters.Target{Raw: "x", URL: u, Options: o, ReadTimeout: tt.gateway, MaxResponseHeaderBytes: tt.gatewayHead}, "uwsgi")
			if err != nil || c.ReadTimeout != tt.want || c.MaxHeaderBytes != tt.wantHead {
				t.Fatalf("read timeout %v, head limit %d (%v); want %v, %d", c.ReadTimeout, c.MaxHeaderBytes, err, tt.want, tt.wantHead)
			}
		})
	}
	u, _ := url.Parse("uwsgi://127.0.0.1:1")
	o, _ := adapters.ParseOptions("read_timeout=-1s")
	if _, err := ParseTarget(adapters.Target{Raw: "x", URL: u, Options: o}, "uwsgi"); err == nil {
		t.Error("a negative read_timeout was accepted")
	}
}
