package fastlane

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestAppendDateWritesNetHTTPsDate checks the cached Date against net/http's format for instants within
// one second, across second boundaries, out of order, and from several goroutines at once.
func TestAppendDateWritesNetHTTPsDate(t *testing.T) {
	base := time.Date(2026, 12, 7, 23, 59, 58, 0, time.FixedZone("X", 3600))
	offsets := []time.Duration{0, 999 * time.Millisecond, time.Second, 1500 * time.Millisecond, 0, 3 * time.Second, -time.Hour}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				for i, off := range offsets {
					now := base.Add(off + time.Duration(g)*time.Second)
					if got, want := string(appendDate([]byte("x"), now)), "x"+now.UTC().Format(http.TimeFormat); got != want {
						t.Errorf("appendDate(%v) (offset %d) = %q, want %q", now, i, got, want)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
