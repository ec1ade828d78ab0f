// Package load owns the gateway's load tests (issue 8): the built gateway binary, run as a child process,
// under 2,000 concurrent keep-alive clients on loopback. It holds no library code; everything is in its
// tests:
//
//   - TestTwoThousandClientsOnMixedRoutes: every client cycles through the primary, the cascade to a
//     delegate (GET and POST, body replayed), a strip_prefix HTTP route (GET and echoed POST), a file://
//     route and a status: route, for a bounded count and time, and checks every answer's status and full
//     body (each body names the app and the path, so a crossed answer is caught); the second half runs
//     through three configuration reloads (SIGHUP). No request may fail, the gateway may log no warning or
//     error, its resident memory after the second half stays within a generous bound of the memory after
//     the warm-up, and its goroutine and open-connection counts return to the baseline once the clients
//     and the apps' connections are gone.
//   - TestSIGTERMUnderLoadCompletesEveryRequestInFlight: 2,000 requests held in flight by the app (half
//     before the answer's head, half in the middle of its body), SIGTERM, then: the listener is closed (new
//     connections refused), idle keep-alive connections are closed cleanly, every held request gets its
//     complete answer once the app releases it, its connection is then closed, and the gateway exits 0.
//   - TestPastMaxConnsTheExtraClientsAreRefusedAndTheAdmittedServed: with GATEWAY_MAX_CONNS=1000 and 1,000
//     clients holding their connections, 1,000 more are each refused (a 503, or a plain close past the few
//     the gateway answers), none served or left hanging; the admitted keep being served, and once they
//     leave the gateway's open count is back to zero and a new 1,000 are admitted.
//   - TestAppClosingKeepAliveConnectionsCostsNoRequest: 1,000 clients send GETs and PUTs to an app that
//     closes its keep-alive connections after 30ms idle and after every fifth answer; every request gets
//     its answer (the gateway retries idempotent requests whose reused connection was stale) and the
//     clients keep their connections.
//   - TestClientsLeavingMidRequestLeaveNothingBehind: 2,000 clients leave while the app holds their
//     requests (half before the head, half mid-body); the app sees every request cancelled, the gateway
//     logs each once (499, or 200 marked aborted) without a warning, and its goroutines and open
//     connections return to the baseline without the apps closing anything.
//
// The gateway (./cmd/gateway) and the apps (./test/load/backend, package internal/loadapp) are built once per
// test binary without -race: they run as separate processes, the gateway's memory figures must be those of
// the real binary, and the apps must cost the machine little next to it. The test opens the apps'
// listeners and hands them down, so nothing waits for a port. The clients are raw net.Conn HTTP/1.1
// clients, one goroutine each, not http.Client.
//
// The tests are skipped by go test -short; go test -race ./... (CI) runs them.
package load
