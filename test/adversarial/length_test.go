package adversarial

import (
	"fmt"
	"net/url"
	"testing"
	"time"
)

// TestEmptyBodiesKeepTheirLength: a POST, PUT or PATCH with an empty body reaches the app with
// "Content-Length: 0" on every path a request can take (RFC 9110 8.6; lighttpd, WEBrick, mongoose and
// cpp-httplib answer 411 Length Required without it), and a GET without the field stays without it.
func TestEmptyBodiesKeepTheirLength(t *testing.T) {
	type want struct {
		method, extra string
		length        int // what the app must see: -1 for no Content-Length
	}
	cases := []want{
		{"POST", "Content-Length: 0\r\n", 0},
		{"PUT", "Content-Length: 0\r\n", 0},
		{"PATCH", "Content-Length: 0\r\n", 0},
		{"POST", "", 0}, // an HTTP/1.1 request without framing fields has an empty body: still a POST
		{"GET", "", -1},
	}
	explicitDelete := want{"DELETE", "Content-Length: 0\r\n", 0}
	q := url.QueryEscape

	t.Run("fast path, ReverseProxy path, cascade replay and shadow copy over HTTP/1.1", func(t *testing.T) {
		direct, rp, replayed := newRecorder(t, "direct"), newRecorder(t, "rp"), newRecorder(t, "replayed")
		shadowOld, shadowNew := newRecorder(t, "old"), newRecorder(t, "new")
		addr, _ := startGateway(t, map[string]string{
			"GATEWAY_PRIMARY": direct.URL(),
			"GATEWAY_ROUTES":  "/rp/=" + rp.URL() + "?fast_path=false,/shadow/=" + shadowNew.URL() + "?stage=shadow&old=" + q(shadowOld.URL()) + "&shadow_methods=" + q("GET,POST,PUT,PATCH,DELETE"),
		})
		// The cascade: the primary passes every request on (404), the delegate gets the held body replayed.
		cascadeAddr, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": "status:404", "GATEWAY_DELEGATES": replayed.URL()})
		paths := []struct {
			addr, prefix string
			recs         []*recorder
			// explicitZero: the path also keeps an explicit "Content-Length: 0" of a method that defines
			// no content. net/http's Transport (the ReverseProxy path) cannot send one.
			explicitZero bool
		}{
			{addr, "/", []*recorder{direct}, true},
			{addr, "/rp/", []*recorder{rp}, false},
			{cascadeAddr, "/replay/", []*recorder{replayed}, true},
			{addr, "/shadow/", []*recorder{shadowOld, shadowNew}, true},
		}
		for _, p := range paths {
			all := cases
			if p.explicitZero {
				all = append(append([]want(nil), cases...), explicitDelete)
			}
			for _, c := range all {
				target := fmt.Sprintf("%sx-%s-%d", p.prefix, c.method, len(c.extra))
				replies, _ := exchange(t, p.addr, fmt.Sprintf("%s %s HTTP/1.1\r\nHost: example.test\r\n%s\r\n", c.method, target, c.extra), 1)
				if len(replies) != 1 || replies[0].Status != 200 {
					t.Fatalf("%s %s: replies %v", c.method, target, statuses(replies))
				}
			}
			for _, rec := range p.recs {
				byTarget := map[string]seenRequest{} // shadow copies arrive in any order
				for _, r := range waitRecorded(t, rec, len(all)) {
					byTarget[r.Target] = r
				}
				for _, c := range all {
					target := fmt.Sprintf("%sx-%s-%d", p.prefix, c.method, len(c.extra))
					got, ok := byTarget[target]
					if !ok {
						t.Errorf("%s never received %s %s", rec.name, c.method, target)
						continue
					}
					if got.Method != c.method || got.ContentLength != c.length {
						t.Errorf("%s %s via %s: app saw %s with Content-Length %d, want %d", c.method, c.extra, p.prefix, got.Method, got.ContentLength, c.length)
					}
				}
			}
		}
	})

	t.Run("HTTP/2 requests without DATA frames", func(t *testing.T) {
		rec := newRecorder(t, "h2")
		addr, _ := startTLSGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL()})
		for _, m := range []string{"POST", "PUT", "PATCH", "GET"} {
			status, refused := h2Request(t, addr, [][2]string{{":method", m}, {":scheme", "https"}, {":authority", "example.test"}, {":path", "/h2-" + m}}, nil)
			if status != 200 {
				t.Fatalf("%s: status %d %s", m, status, refused)
			}
		}
		seen := waitRecorded(t, rec, 4)
		for i, want := range []int{0, 0, 0, -1} {
			if seen[i].ContentLength != want {
				t.Errorf("HTTP/2 %s without DATA: app saw Content-Length %d, want %d", seen[i].Method, seen[i].ContentLength, want)
			}
		}
	})
}

// waitRecorded returns the first n requests rec received, waiting for asynchronous ones (shadow copies)
// to arrive within ioTimeout.
func waitRecorded(t *testing.T, rec *recorder, n int) []seenRequest {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for {
		rec.mu.Lock()
		got := append([]seenRequest(nil), rec.reqs...)
		broken := append([]string(nil), rec.broken...)
		rec.mu.Unlock()
		if len(broken) > 0 {
			t.Fatalf("%s got malformed requests: %v", rec.name, broken)
		}
		if len(got) >= n {
			return got[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s received %d requests, want %d: %v", rec.name, len(got), n, targets(got))
		}
		time.Sleep(5 * time.Millisecond) // shadow copies are sent in the background with no signal to wait on
	}
}
