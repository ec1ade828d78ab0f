package middleware

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"an untrusted peer is the client whatever it claims", trusted, "203.0.113.9:4000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"with nobody trusted the peer is the client", nil, "10.0.0.1:1", []string{"1.2.3.4"}, "10.0.0.1"},
		{"a trusted peer's rightmost untrusted hop is the client", trusted, "10.0.0.1:1", []string{"6.6.6.6, 1.2.3.4, 10.0.0.2"}, "1.2.3.4"},
		{"hops in several header lines are read right to left", trusted, "10.0.0.1:1", []string{"6.6.6.6", "1.2.3.4", "10.0.0.7"}, "1.2.3.4"},
		{"a trusted peer without X-Forwarded-For is the client", trusted, "127.0.0.1:5", nil, "127.0.0.1"},
		{"all hops trusted gives the leftmost", trusted, "10.0.0.1:1", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"a garbage hop stops the walk at the last good one", trusted, "10.0.0.1:1", []string{"1.2.3.4, garbage, 10.0.0.2"}, "10.0.0.2"},
		{"IPv6 peers and mapped addresses", trusted, "[::ffff:10.0.0.1]:1", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
		{"an unparsable peer gives no address", trusted, "pipe", nil, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest("GET", "http://x/", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := (ClientIP{Trusted: tt.trusted}).Addr(r).String(); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}
