package httpproxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTheRelayedPathAnswersThroughTheRelay: off the direct path (on the h1 client, on net/http's
// Transport, behind the balancer) a final answer is written by the relay (its abort line carries the
// status and method, which ReverseProxy's own log line does not), while a 101 is never relayed: a switch
// the client did not ask for is a 502.
func TestTheRelayedPathAnswersThroughTheRelay(t *testing.T) {
	for _, tc := range []struct{ name, option string }{
		{"on the h1 client", ""},
		{"on net/http's Transport", "fast_path=false"},
		{"behind the balancer", "breaker=true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := scripted(t, func(r *http.Request) (string, bool) {
				if r.URL.Path == "/switch" {
					return "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", true
				}
				return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", true
			})
			raw := u
			if tc.option != "" {
				raw = withOption(u, tc.option)
			}
			p, front, logs := build(t, raw)
			p.noDirect = true
			resp, err := client(t).Get(front.URL + "/cut")
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("reading a truncated answer: %v, want unexpected EOF (an aborted response)", err)
				}
			}
			if l := logs.String(); !strings.Contains(l, `msg="upstream response aborted: app failed mid-body"`) ||
				!strings.Contains(l, "status=200 method=GET path=/cut") {
				t.Errorf("no relay abort line in the log:\n%s", l)
			}
			resp, err = client(t).Get(front.URL + "/switch")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("an unasked-for 101: status %d, want 502", resp.StatusCode)
			}
			if l := logs.String(); !strings.Contains(l, "status=502 method=GET path=/switch") {
				t.Errorf("no failure line for the unasked-for 101 in the log:\n%s", l)
			}
		})
	}
}
