//go:build linux

package gateway

import (
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// TestTheLaneServesAHealthCheckedAppAsNetHTTPDoes: an app of one instance with active health checks and
// a circuit breaker (as docker-compose.yml and the Kubernetes files configure the primary) is served by
// the lane's express path and loops, and the lane counts each exchange as the handler chain's balancer
// does: the same bytes to the client and the app, the same log, metrics and ledger, and the same health
// report (in-flight count back to 0, consecutive failures, last error, breaker). With its one instance
// failing its check, every request gets the handler chain's 503 (the lane answers none itself).
func TestTheLaneServesAHealthCheckedAppAsNetHTTPDoes(t *testing.T) {
	for _, tc := range []struct {
		name, primary string
		up            bool
	}{
		{"checked and guarded by a breaker", "http://(app)?timeout=300ms&health_check=connect&health_interval=1h&breaker=true", true},
		{"failing its check", "http://(app)?timeout=300ms&health_path=/nothing&health_interval=1h", false},
		// Every connect refused: the failures count and open the breaker, then its 503s.
		{"refusing connections, its breaker opening", "http://" + testpeer.ClosedPort(t) + "?breaker=true&breaker_failures=3&breaker_timeout=1h", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"GATEWAY_PRIMARY", tc.primary}
			off, offLog, offCounts, _ := runCases(t, laneAnswers, laneCases, false, env...)
			if !strings.Contains(offCounts, "health of ") {
				t.Fatalf("no health report:\n%s", offCounts)
			}
			if tc.up != strings.Contains(offCounts, "Healthy:true") || !strings.Contains(offCounts, "InFlight:0") ||
				strings.Contains(tc.primary, "breaker_failures") && !strings.Contains(offCounts, "BreakerOpens:1") {
				t.Fatalf("the health report is not the one the case needs:\n%s", offCounts)
			}
			if tc.up && !strings.Contains(offCounts, "LastError:h1: bad Content-Length") {
				t.Fatalf("the broken answer is not the last failure:\n%s", offCounts)
			}
			onLaneSettings(t, laneAnswers, laneCases, env, laneRun{off, offLog, offCounts}, func(t *testing.T, loops string, f *Front) {
				switch {
				case tc.up && f.Lane.Expressed() < 30:
					t.Errorf("the express path took %d exchanges; want most of them", f.Lane.Expressed())
				case tc.up && loops == "0" && f.Lane.Looped() < 20:
					t.Errorf("the event loops finished %d exchanges; want most of them", f.Lane.Looped())
				case !tc.up && f.Lane.Expressed() != 0:
					t.Errorf("the express path took %d exchanges of an app that may not be tried", f.Lane.Expressed())
				}
			})
		})
	}
}
