//go:build linux

package gateway

import (
	"bufio"
	"log/slog"
	"testing"
	"time"
)

// TestTheFastLanesIdleConnectionsAreParked runs NewFront with the lane on (without event loops, which
// hold idle connections themselves) and a short park delay: a connection the lane served is parked after
// the delay (the parker counts it, the lane holds no goroutine for it), its next requests are served by
// the lane again, and the limits count it once.
func TestTheFastLanesIdleConnectionsAreParked(t *testing.T) {
	b := startRawBackend(t, laneAnswers)
	addr, f := startFront(t, map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String(),
		"GATEWAY_FAST_LANE": "true", "GATEWAY_FAST_LANE_LOOPS": "-1", "GATEWAY_IDLE_PARK_AFTER": "20ms"},
		slog.New(slog.DiscardHandler))
	if f.Lane == nil || f.Parker == nil {
		t.Fatalf("lane %v, parker %v: want both", f.Lane != nil, f.Parker != nil)
	}
	c := dialFront(t, addr)
	br := bufio.NewReader(c)
	const rounds = 3
	for i := range rounds {
		askHello(t, c, br, getCL)
		deadline := time.Now().Add(10 * time.Second)
		for f.Parker.ParkedTotal() != uint64(i+1) || f.Parker.Parked() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d parked, %d parks; want the connection parked", i, f.Parker.Parked(), f.Parker.ParkedTotal())
			}
			time.Sleep(time.Millisecond)
		}
	}
	if f.Lane.Served() != rounds || f.Lane.HandedOff() != 0 {
		t.Fatalf("the lane served %d and handed off %d, want %d and 0", f.Lane.Served(), f.Lane.HandedOff(), rounds)
	}
	t.Logf("%d of the %d requests on the express path", f.Lane.Expressed(), rounds)
	if open := f.Limits.Stats().Open; open != 1 {
		t.Fatalf("%d connections open for the limits, want 1", open)
	}
}
