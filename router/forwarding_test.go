package router

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestForwardingHeadersTrust checks every forwarding header by name: deleted from an untrusted peer, kept
// from a trusted proxy; and the names that are never forwarding headers, kept from both.
func TestForwardingHeadersTrust(t *testing.T) {
	forwarding := []string{"Forwarded", "X-Forwarded", "Forwarded-For", "X-Url-Scheme", "X-Real-Ip", "True-Client-Ip",
		"X-Client-Ip", "X-Cluster-Client-Ip", "Cf-Connecting-Ip", "Fastly-Client-Ip", "X-Original-Url",
		"X-Rewrite-Url", "X-Original-Uri", "X-Original-Host", "X-Host", "X-Script-Name", "Script-Name",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Prefix", "X-Forwarded-User"}
	ordinary := []string{"Accept", "Cookie", "User-Agent", "X-Forwarde", "Xforwarded-For", "X-Request-Id", "Fastly-Debug"}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tt := range []struct {
		name        string
		remote      string
		keepClaimed bool
	}{
		{"from an untrusted peer, forwarding headers are deleted", "192.0.2.1:5000", false},
		{"from a trusted proxy, forwarding headers are kept", "10.1.2.3:5000", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got http.Header
			h := Sanitize(SanitizeConfig{TrustedProxies: trusted})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Clone()
			}))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, n := range append(forwarding, ordinary...) {
				r.Header[n] = []string{"v"}
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			for _, n := range forwarding {
				if _, ok := got[n]; ok != tt.keepClaimed {
					t.Errorf("%s: present %v, want %v", n, ok, tt.keepClaimed)
				}
			}
			for _, n := range ordinary {
				if _, ok := got[n]; !ok {
					t.Errorf("%s was deleted: it is no forwarding header", n)
				}
			}
		})
	}
}
