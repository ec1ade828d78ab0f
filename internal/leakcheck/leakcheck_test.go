package leakcheck

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestFindWaitsForEndingGoroutinesAndReportsLeakedOnes(t *testing.T) {
	before := goleak.IgnoreCurrent()
	// Ends after goleak's own retries would have given up: not a leak.
	go time.Sleep(time.Second)
	if err := Find(before); err != nil {
		t.Fatalf("a goroutine that ends after a second was called leaked: %v", err)
	}
	// Never ends: a leak, reported after Patience.
	block := make(chan struct{})
	defer close(block)
	go func() { <-block }()
	if err := Find(before); err == nil {
		t.Fatal("a goroutine blocked for good was not reported")
	}
}
