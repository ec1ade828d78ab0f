package upstream

import (
	"sync"
	"time"
)

// budgetBuckets one-second buckets make the retry budget's sliding window (10s).
const budgetBuckets = 10

// Budget caps retries to a share of recent requests so that a failing cluster does not see its load
// multiplied by retries: over the last 10 seconds, retries may add at most Ratio times the requests, plus
// Min retries that are always allowed (so a quiet app can still retry). Safe for concurrent use.
type Budget struct {
	ratio float64
	min   int
	now   func() time.Time

	mu      sync.Mutex
	buckets [budgetBuckets]struct {
		sec           int64
		reqs, retries int
	}
}

// NewBudget returns a budget allowing ratio*requests+min retries per window; now is the clock (time.Now
// when nil).
func NewBudget(ratio float64, min int, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{ratio: ratio, min: min, now: now}
}

// bucket returns the current bucket, reset if it belonged to an older second. b.mu must be held.
func (b *Budget) bucket(sec int64) int {
	i := int(sec % budgetBuckets)
	if b.buckets[i].sec != sec {
		b.buckets[i].sec, b.buckets[i].reqs, b.buckets[i].retries = sec, 0, 0
	}
	return i
}

// Request counts one request (not its retries).
func (b *Budget) Request() {
	sec := b.now().Unix()
	b.mu.Lock()
	b.buckets[b.bucket(sec)].reqs++
	b.mu.Unlock()
}

// AllowRetry reports whether one more retry fits in the budget, and if so counts it.
func (b *Budget) AllowRetry() bool {
	sec := b.now().Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.bucket(sec)
	var reqs, retries int
	for _, bk := range b.buckets {
		if bk.sec > sec-budgetBuckets && bk.sec <= sec {
			reqs += bk.reqs
			retries += bk.retries
		}
	}
	if float64(retries) >= b.ratio*float64(reqs)+float64(b.min) {
		return false
	}
	b.buckets[cur].retries++
	return true
}
