package adversarial

import (
	"strings"
	"testing"
)

// TestEmptyHost: an HTTP/1.1 or HTTP/2 request without a Host is refused with 400 (RFC 9112 3.2; nginx
// does the same); an HTTP/1.0 request may come without one, and reaches an HTTP app with the app's own
// address as Host and no X-Forwarded-Host, on the fast path and the ReverseProxy path alike.
func TestEmptyHost(t *testing.T) {
	t.Run("HTTP/1.0 without Host, on every proxy path", func(t *testing.T) {
		fast, rp := newRecorder(t, "fast"), newRecorder(t, "rp")
		addr, _ := startGateway(t, map[string]string{
			"GATEWAY_PRIMARY": fast.URL(),
			"GATEWAY_ROUTES":  "/rp/=" + rp.URL() + "?fast_path=false",
		})
		for _, raw := range []string{"GET /a HTTP/1.0\r\n\r\n", "GET /b HTTP/1.0\r\nHost:\r\n\r\n", "GET /rp/a HTTP/1.0\r\n\r\n", "GET /rp/b HTTP/1.0\r\nHost:\r\n\r\n"} {
			if replies, _ := exchange(t, addr, raw, 1); len(replies) != 1 || replies[0].Status != 200 {
				t.Fatalf("%q: %v", raw, statuses(replies))
			}
		}
		for _, rec := range []*recorder{fast, rp} {
			reqs, broken := rec.record()
			if len(broken) > 0 || len(reqs) != 2 {
				t.Fatalf("%s: %d requests, broken %v", rec.name, len(reqs), broken)
			}
			want := strings.TrimPrefix(rec.URL(), "http://")
			for _, r := range reqs {
				if r.Host != want || r.Header.Get("X-Forwarded-Host") != "" {
					t.Errorf("%s %s: Host %q and X-Forwarded-Host %q, want %q and none", rec.name, r.Target, r.Host, r.Header.Get("X-Forwarded-Host"), want)
				}
			}
		}
	})
	t.Run("HTTP/2 without :authority or Host is refused", func(t *testing.T) {
		rec := newRecorder(t, "h2")
		addr, _ := startTLSGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL()})
		status, refused := h2Request(t, addr, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/a"}}, nil)
		if status != 400 && refused == "" {
			t.Fatalf("status %d, want 400 or a refused stream", status)
		}
		if reqs, _ := rec.record(); len(reqs) != 0 {
			t.Fatalf("the app received %v", targets(reqs))
		}
	})
}
