//go:build linux

package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestTheFastLanesIdleConnectionsAreParked runs NewFront with the lane on (without event loops, which
// hold idle connections themselves) and a short park delay: a connection the lane served is parked after
// the delay (the parker counts it, the lane holds no goroutine for it), its next requests are served by
// the lane again, and the limits count it once.
func TestTheFastLanesIdleConnectionsAreParked(t *testing.T) {
	b := startRawBackend(t, laneAnswers)
	cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String(),
		"GATEWAY_FAST_LANE": "true", "GATEWAY_FAST_LANE_LOOPS": "-1", "GATEWAY_IDLE_PARK_AFTER": "20ms"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFront(cfg, g.Handler, ln, logger, FrontOptions{})
	if f.Lane == nil || f.Parker == nil {
		t.Fatalf("lane %v, parker %v: want both", f.Lane != nil, f.Parker != nil)
	}
	done := make(chan struct{})
	go func() { defer close(done); f.Serve() }()
	t.Cleanup(func() { f.Server.Close(); <-done })

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	const rounds = 3
	for i := range rounds {
		io.WriteString(c, "GET /cl HTTP/1.1\r\nHost: a\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		body, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("round %d: %d %q (%v), want 200 hello", i, res.StatusCode, body, err)
		}
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
