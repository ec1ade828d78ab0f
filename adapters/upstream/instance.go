package upstream

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Instance is one upstream address of a Set. Its state is updated by attempts (passive), health checks
// (active) and its circuit breaker; all methods are safe for concurrent use.
type Instance struct {
	addr  string
	index int
	hash  uint64

	inflight     atomic.Int64
	down         atomic.Bool  // failing its active health check
	ejectedUntil atomic.Int64 // unix nanoseconds; 0 when not ejected
	trial        atomic.Bool  // the one half-open trial after an ejection is in flight
	breaker      *gobreaker.TwoStepCircuitBreaker[struct{}]

	// cumulative counters, reported by Set.Health
	retries      atomic.Uint64
	retryRefused atomic.Uint64
	ejections    atomic.Uint64
	breakerOpens atomic.Uint64

	mu          sync.Mutex
	known       bool
	fails       int // consecutive failed attempts
	okChecks    int // consecutive passing health checks
	badChecks   int // consecutive failing health checks
	lastChecked time.Time
	lastErr     string
}

// Addr is the instance as configured ("http://10.0.0.1:8000").
func (in *Instance) Addr() string { return in.addr }

// Index is the instance's position in the configured list.
func (in *Instance) Index() int { return in.index }

// InFlight is the number of attempts currently using the instance.
func (in *Instance) InFlight() int64 { return in.inflight.Load() }

// CountRetry records what became of a failed, retryable attempt on the instance: retried (sent again to
// another instance) when allowed, else refused by the retry budget. The counts appear in Set.Health.
func (in *Instance) CountRetry(allowed bool) {
	if allowed {
		in.retries.Add(1)
	} else {
		in.retryRefused.Add(1)
	}
}

// why an instance is skipped; the zero value means available.
type reason int

const (
	available reason = iota
	reasonDown
	reasonEjected
	reasonOpen
)

// String says why an instance is not tried ("" when it may be).
func (r reason) String() string {
	switch r {
	case reasonDown:
		return "failing the health check"
	case reasonEjected:
		return "ejected after failures"
	case reasonOpen:
		return "circuit breaker open"
	}
	return ""
}

// state says whether the instance may be picked at now, before its half-open trial slot or breaker are
// claimed.
func (in *Instance) state(now int64) reason {
	if in.down.Load() {
		return reasonDown
	}
	if until := in.ejectedUntil.Load(); until != 0 && (now < until || in.trial.Load()) {
		return reasonEjected
	}
	if in.breaker != nil && in.breaker.State() == gobreaker.StateOpen {
		return reasonOpen
	}
	return available
}
