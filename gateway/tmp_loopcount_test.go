//go:build linux

package gateway

import "testing"

func TestTmpLoopCount(t *testing.T) {
	_, _, _, f := runCases(t, laneAnswers, laneCases, true, "GATEWAY_FAST_LANE_LOOPS", "0")
	t.Logf("single: looped %d expressed %d", f.Lane.Looped(), f.Lane.Expressed())
	second := startRawBackend(t, laneAnswers).ln.Addr().String()
	_, _, _, f = runCases(t, laneAnswers, laneCases, true, "GATEWAY_FAST_LANE_LOOPS", "0", "GATEWAY_PRIMARY", "http://(app)|http://"+second+"?timeout=300ms")
	t.Logf("multi: looped %d expressed %d", f.Lane.Looped(), f.Lane.Expressed())
}
