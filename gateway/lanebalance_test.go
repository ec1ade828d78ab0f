//go:build linux

package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// TestTheLaneServesAnAppOfSeveralInstancesAsNetHTTPDoes: an app of several instances is served by the
// lane's loops as the handler chain's balancer serves it: the same instance picked for each request
// (each case's bytes at the first instance are the same), the same retries on another instance after
// a refused connect or a broken answer, the same health reports (in-flight counts, failures, retries),
// log lines and metrics. The loops take it only when what they send does not depend on the instance
// nor the pick on the request: with host_header=upstream or the hash policy the handler chain serves.
func TestTheLaneServesAnAppOfSeveralInstancesAsNetHTTPDoes(t *testing.T) {
	second := startRawBackend(t, laneAnswers).ln.Addr().String()
	// looped is the least number of exchanges the loops finish: the cases' failures (broken answers, a
	// stall) eject both instances for a while unless max_fails=0, and the handler chain then answers 503.
	for _, tc := range []struct {
		name, primary string
		looped        uint64
	}{
		{"round robin over two, never ejected", "http://(app)|http://" + second + "?timeout=300ms&max_fails=0", 40},
		{"round robin over two", "http://(app)|http://" + second + "?timeout=300ms", 10},
		{"least requests over two", "http://(app)|http://" + second + "?timeout=300ms&lb=least_requests", 10},
		{"in order, the first refusing connections", "http://" + testpeer.ClosedPort(t) + "|http://(app)?timeout=300ms&lb=first", 10},
		{"in order, the first refusing every connection, never ejected", "http://" + testpeer.ClosedPort(t) + "|http://(app)?timeout=300ms&lb=first&max_fails=0&retry_budget_min=1000", 40},
		{"in order, the first refusing every connection, the retry budget spent", "http://" + testpeer.ClosedPort(t) + "|http://(app)?timeout=300ms&lb=first&max_fails=0", 10},
		{"round robin, one refusing, no retries", "http://(app)|http://" + testpeer.ClosedPort(t) + "?timeout=300ms&retries=0", 10},
		{"checked, with breakers", "http://(app)|http://" + second + "?timeout=300ms&health_check=connect&health_interval=1h&breaker=true&max_fails=0", 40},
		{"the upstream's Host", "http://(app)|http://" + second + "?timeout=300ms&host_header=upstream", 0},
		{"hashed by a field", "http://(app)|http://" + second + "?timeout=300ms&lb=hash&hash_key=header:X-Tenant", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"GATEWAY_PRIMARY", tc.primary}
			off, offLog, offCounts, _ := runCases(t, laneAnswers, laneCases, false, env...)
			if !strings.Contains(offCounts, "health of ") {
				t.Fatalf("no health report:\n%s", offCounts)
			}
			onLaneSettings(t, laneAnswers, laneCases, env, laneRun{off, offLog, offCounts}, func(t *testing.T, loops string, f *Front) {
				switch n := f.Lane.Looped(); {
				case loops == "0" && n < tc.looped:
					t.Errorf("the event loops finished %d exchanges; want %d at least", n, tc.looped)
				case (tc.looped == 0 || loops == "-1") && n != 0:
					t.Errorf("the event loops finished %d exchanges of an app they should leave to the handler chain", n)
				}
			})
		})
	}
}

// TestTheLanesAccessLinesNameTheInstanceThatAnswered: the access line of an exchange the lane's loop
// carried to an app of several instances names the instance it went to, as the handler chain's does:
// round robin over two gives each of them half of the lines.
func TestTheLanesAccessLinesNameTheInstanceThatAnswered(t *testing.T) {
	second := startRawBackend(t, laneAnswers).ln.Addr().String()
	get := laneCase{"a GET", "GET /cl HTTP/1.1\r\nHost: a\r\n\r\n", "GET"}
	cases := []laneCase{get, {"another GET", get.req, "GET"}, {"a third GET", get.req, "GET"}}
	for _, lane := range []bool{false, true} {
		logs := &syncBuffer{}
		_, _, _, f := runCasesWith(t, laneAnswers, cases, lane, func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(logs, nil)) },
			"GATEWAY_PRIMARY", "http://"+second+"|http://(app)?timeout=300ms", "GATEWAY_FAST_LANE_LOOPS", "0")
		if lane && f.Lane.Looped() != 6 {
			t.Errorf("the loops finished %d exchanges; want the 6", f.Lane.Looped())
		}
		// Each case sends a GET and a follow-up GET: 6 exchanges, 3 to each instance.
		if n := strings.Count(logs.String(), "upstream="+second); n != 3 || strings.Count(logs.String(), "upstream=") != 6 {
			t.Errorf("lane %v: %d access lines name the instance %s; want 3 of 6:\n%s", lane, n, second, logs.String())
		}
	}
	// An answer cut mid-body: its "response aborted" line names the instance that answered, as its access
	// line does (the first instance refuses connections: each request is sent on to the second).
	refusing := testpeer.ClosedPort(t)
	for _, lane := range []bool{false, true} {
		logs := &syncBuffer{}
		cut := laneCase{"a cut answer", "GET /short HTTP/1.1\r\nHost: a\r\n\r\n", "GET"}
		runCasesWith(t, laneAnswers, []laneCase{cut}, lane, func(o *Options) {
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			o.Registry = builtin.Registry(o.Logger, nil) // the app's own lines (the relay's) too
		}, "GATEWAY_PRIMARY", "http://"+refusing+"|http://(app)?timeout=300ms&max_fails=0&lb=first&retry_budget_min=100", "GATEWAY_FAST_LANE_LOOPS", "0")
		var aborted, access string
		for _, line := range strings.Split(logs.String(), "\n") {
			switch {
			case strings.Contains(line, "response aborted"):
				aborted = line
			case strings.Contains(line, "msg=request") && strings.Contains(line, "path=/short"):
				access = line
			}
		}
		up := func(line string) string {
			_, v, _ := strings.Cut(line, " upstream=")
			v, _, _ = strings.Cut(v, " ")
			return v
		}
		if aborted == "" || up(aborted) != up(access) || up(access) == refusing || up(access) == "" {
			t.Errorf("lane %v: the cut answer's lines name %q and %q; want the answering instance in both:\n%s", lane, up(aborted), up(access), logs.String())
		}
	}
}

// TestTheLaneSendsASpentBodyNowhereElse: a PUT sent on a reused connection to an instance that dies
// with it is sent again to that instance on a new connection (the app's client's retry of a stale
// connection), whose connect fails: its body was sent, so the lane, as the handler chain, answers 502
// and sends it to no other instance (which would get a short body and be ejected for it); a GET then
// goes to the other instance, still in service.
func TestTheLaneSendsASpentBodyNowhereElse(t *testing.T) {
	for _, lane := range []string{"false", "true", "-1"} {
		t.Run("GATEWAY_FAST_LANE="+lane, func(t *testing.T) {
			dying, kill := testpeer.DyingApp(t)
			other := startRawBackend(t, laneAnswers)
			env := map[string]string{"GATEWAY_PRIMARY": dying + "|http://" + other.ln.Addr().String() + "?lb=first", "GATEWAY_FAST_LANE": "true"}
			if lane == "false" {
				env["GATEWAY_FAST_LANE"] = "false"
			} else if lane == "-1" {
				env["GATEWAY_FAST_LANE_LOOPS"] = "-1"
			}
			addr, f := startFront(t, env, slog.New(slog.DiscardHandler))
			c := dialFront(t, addr)
			br := bufio.NewReader(c)
			ask := func(req string) int {
				if _, err := io.WriteString(c, req); err != nil {
					t.Fatal(err)
				}
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res.StatusCode
			}
			if code := ask("GET /warm HTTP/1.1\r\nHost: a\r\n\r\n"); code != 200 {
				t.Fatalf("warm-up: %d", code)
			}
			kill()
			if code := ask("PUT /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\nthe body"); code != http.StatusBadGateway {
				t.Errorf("PUT: %d; want 502", code)
			}
			if got := other.take(); len(got) != 0 {
				t.Errorf("the other instance got the PUT:\n%s", got)
			}
			if code := ask("GET /cl HTTP/1.1\r\nHost: a\r\n\r\n"); code != 200 {
				t.Errorf("GET after it: %d; want the other instance's 200 (not ejected)", code)
			}
			if lane == "true" && f.Lane.Looped() != 1 {
				t.Errorf("the loops finished %d exchanges; want the first GET (the PUT is answered by the handler chain, where the connection stays)", f.Lane.Looped())
			}
		})
	}
}
