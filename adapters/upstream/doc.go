// Package upstream owns what an application with several instances needs regardless of the protocol it is
// spoken to in: the instance set (Set), the selection policies (round_robin, least_requests, p2c, hash,
// first), active health checks (one goroutine per Set, stopped by Close), passive ejection after
// consecutive failures, a circuit breaker per instance (github.com/sony/gobreaker/v2), the retry rules
// (which requests and errors may go to another instance) and the retry budget that keeps a dying cluster
// from being hammered by retries.
//
// A transport (adapters/httpproxy) asks the Set for an instance per attempt with Acquire, sends the request
// itself, and reports the outcome with Attempt.Done; health probes are a function the transport supplies.
package upstream
