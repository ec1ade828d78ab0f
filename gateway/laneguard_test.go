//go:build linux

package gateway

import (
	"maps"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// guardCases are requests to /run/, a route with a guard (Options.RouteGuards, the run apps' 503), and
// one to the primary.
var guardCases = []laneCase{
	{"a GET", "GET /run/cl?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nX-Request-Id: g1\r\n\r\n", "GET"},
	{"a POST", "POST /run/cl HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX-Request-Id: g2\r\n\r\nhello", "POST"},
	{"HEAD", "HEAD /run/cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: g3\r\n\r\n", "HEAD"},
	{"a chunked answer (the handler chain finishes it)", "GET /run/chunked HTTP/1.1\r\nHost: a\r\nX-Request-Id: g4\r\n\r\n", "GET"},
	{"the app times out (504)", "GET /run/stall HTTP/1.1\r\nHost: a\r\nX-Request-Id: g5\r\n\r\n", "GET"},
	{"the primary", "GET /cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: g6\r\n\r\n", "GET"},
}

// testGuard is a route guard as the run apps' is: while up, it passes requests on and counts them in
// flight (Admit the same, without waiting); while down, it answers 503 with Retry-After.
type testGuard struct {
	up       bool
	inFlight atomic.Int64
	admitted atomic.Int64
	released chan struct{}
}

func (g *testGuard) guard() RouteGuard {
	return RouteGuard{
		Middleware: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !g.up {
					w.Header().Set("Retry-After", "1")
					http.Error(w, "503 service unavailable: the app is restarting", http.StatusServiceUnavailable)
					return
				}
				g.inFlight.Add(1)
				defer g.release()
				next.ServeHTTP(w, r)
			})
		},
		Admit: func() (func(), bool) {
			if !g.up {
				return nil, false
			}
			g.inFlight.Add(1)
			g.admitted.Add(1)
			return g.release, true
		},
	}
}

func (g *testGuard) release() {
	g.inFlight.Add(-1)
	g.released <- struct{}{}
}

// settled waits (10 s at most) until no request the guard let through is in flight.
func (g *testGuard) settled(t *testing.T) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for g.inFlight.Load() != 0 {
		select {
		case <-g.released:
		case <-deadline:
			t.Fatalf("%d requests the guard let through were never released", g.inFlight.Load())
		}
	}
}

// TestTheLaneServesAGuardedRouteAsNetHTTPDoes is the differential test of a route with a guard (a run
// app's route): while the guard admits, the express path and the event loops serve the route, with the
// same bytes, log, metrics and ledger as the handler chain, and release what the guard counted; while it
// refuses, every request gets the guard's own 503 through the handler chain, the lane on or off.
func TestTheLaneServesAGuardedRouteAsNetHTTPDoes(t *testing.T) {
	answers := maps.Clone(laneAnswers) // by the path the app gets (stripped)
	answers["/cl?x=1"] = laneAnswers["/cl"]
	routes := []string{"GATEWAY_ROUTES", "/run/=http://(app)?strip_prefix=true&timeout=300ms"}
	for _, up := range []bool{true, false} {
		name := "the guard admits"
		if !up {
			name = "the guard refuses"
		}
		t.Run(name, func(t *testing.T) {
			run := func(lane bool, loops string) (laneRun, *Front, *testGuard) {
				g := &testGuard{up: up, released: make(chan struct{}, 64)}
				opts := func(o *Options) { o.RouteGuards = map[string]RouteGuard{"/run/": g.guard()} }
				out, log, counts, f := runCasesWith(t, answers, guardCases, lane, opts, append(routes, "GATEWAY_FAST_LANE_LOOPS", loops)...)
				g.settled(t)
				return laneRun{out, log, counts}, f, g
			}
			off, _, _ := run(false, "0")
			if got := off.out["a GET"].client; up == (got[:12] != "HTTP/1.1 200") {
				t.Fatalf("lane off, a GET: %q", got)
			}
			for _, loops := range []string{"0", "-1"} {
				t.Run("GATEWAY_FAST_LANE_LOOPS="+loops, func(t *testing.T) {
					on, f, g := run(true, loops)
					sameAsLaneOff(t, guardCases, off, on)
					admitted := g.admitted.Load()
					switch {
					case up && admitted < int64(len(guardCases)-1):
						t.Errorf("the guard admitted %d of the %d requests of its route to the express path", admitted, len(guardCases)-1)
					case !up && admitted != 0:
						t.Errorf("a refusing guard admitted %d requests", admitted)
					}
					if n := f.Lane.Looped(); loops == "0" && up && n < 3 {
						t.Errorf("the event loops finished %d exchanges of the guarded route", n)
					}
				})
			}
		})
	}
}
