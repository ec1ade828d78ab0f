package adapters

import (
	"context"
	"net/http"
	"time"
)

// InstanceHealth is what an application knows about one of its instances (upstream addresses).
type InstanceHealth struct {
	// Address is the instance as configured ("http://10.0.0.1:8000", "unix:/run/app.sock").
	Address string `json:"address"`
	// Healthy is false while the instance is ejected or failing its health check.
	Healthy bool `json:"healthy"`
	// Unavailable says why an instance is not tried now ("" while it is): "failing the health check",
	// "ejected after failures", "circuit breaker open".
	Unavailable string `json:"unavailable,omitempty"`
	// Known is false until the first health check (or request) has said anything.
	Known bool `json:"known"`
	// InFlight is the number of requests currently sent to it.
	InFlight int64 `json:"in_flight"`
	// ConsecutiveFailures counts failures since the last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
	// LastChecked is when health was last updated (zero if never).
	LastChecked time.Time `json:"last_checked,omitzero"`
	// LastError is the cause of the last failure, if any.
	LastError string `json:"last_error,omitempty"`

	// The counters below are cumulative since the application handler was built (a reload that builds a new
	// handler starts them again at zero). They are zero for handlers that do not balance instances.

	// Retries counts failed attempts on this instance that were sent again to another instance.
	Retries uint64 `json:"retries"`
	// RetryBudgetExhausted counts failed attempts on this instance that could have been retried but were
	// not, because the retry budget was spent.
	RetryBudgetExhausted uint64 `json:"retry_budget_exhausted"`
	// Ejections counts passive ejections (consecutive failed attempts reaching max_fails, or a failed
	// trial after an ejection).
	Ejections uint64 `json:"ejections"`
	// BreakerOpens counts transitions of the instance's circuit breaker to open.
	BreakerOpens uint64 `json:"breaker_opens"`
	// Unsolicited counts pooled connections dropped because the app sent bytes no request asked for
	// (an answer to nobody: see internal/connpeek). Kept for every instance of the kinds that pool
	// connections, balanced or not.
	Unsolicited uint64 `json:"unsolicited_responses"`
}

// HealthReporter is implemented by application handlers that track the health of their instances
// (several instances, active checks, passive ejection). The admin API and /readyz read it; handlers that do
// not implement it count as one instance whose health is not tracked.
type HealthReporter interface {
	Health() []InstanceHealth
}

// Reacher is implemented by handlers of apps reached over the network. Reach opens a connection to the
// instance reported by Health with Address addr and closes it at once; nil means something accepted the
// connection. /readyz uses it for instances nothing has judged yet (a single instance without active
// health checks), so a dead app is seen without traffic and without configuring checks.
type Reacher interface {
	Reach(ctx context.Context, addr string) error
}

// FindReacher returns the Reacher behind h: h itself, or what a chain of wrappers with an
// `Unwrap() http.Handler` method leads to (the gateway wraps every app to time it).
func FindReacher(h http.Handler) (Reacher, bool) {
	for range 16 { // wrappers are few; a cycle must not hang /readyz
		if r, ok := h.(Reacher); ok {
			return r, true
		}
		u, ok := h.(interface{ Unwrap() http.Handler })
		if !ok {
			return nil, false
		}
		h = u.Unwrap()
	}
	return nil, false
}

// Reviver is an app that can be told that the process behind one of its instances was restarted and is
// ready (a run app's, by its supervisor): it puts that instance back in service at once rather than
// when its ejection would have ended. address is the instance's dial address (127.0.0.1:PORT, or a unix
// socket's path); an app without an instance there does nothing.
type Reviver interface {
	Revive(address string)
}
