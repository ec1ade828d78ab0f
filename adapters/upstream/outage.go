package upstream

import (
	"sync"
	"sync/atomic"
	"time"
)

// outageLogEvery is how often, while no instance of a Set may be tried, one more of the requests
// answered 503 for it is logged (the first of the outage always is).
const outageLogEvery = 10 * time.Second

// outageLog keeps the log of an outage (every instance out) to a line at its start and one every
// outageLogEvery with the number of 503s left out in between: under load each request gets its 503, and a
// line for each would flood the log with tens of thousands a second. The first Acquire that finds an
// instance ends the outage.
type outageLog struct {
	active  atomic.Bool
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// line says whether a 503 answered at now for the outage is logged, and how many were not since the
// last one that was.
func (o *outageLog) line(now time.Time) (bool, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.active.Load() && now.Sub(o.last) < outageLogEvery {
		o.skipped++
		return false, 0
	}
	skipped := o.skipped
	o.active.Store(true)
	o.last, o.skipped = now, 0
	return true, skipped
}

// end ends the outage, if there was one (ended): the next 503 is logged. skipped is the number of
// its 503s not logged since its last line.
func (o *outageLog) end() (skipped int, ended bool) {
	if !o.active.Load() {
		return 0, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.active.Load() {
		return 0, false
	}
	o.active.Store(false)
	skipped, o.skipped = o.skipped, 0
	return skipped, true
}
