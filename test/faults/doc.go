// Package faults owns the gateway's fault and limit suite: tests that speak raw TCP to a gateway built
// in-process exactly as cmd/gateway builds it (config.Load, gateway.Build with the built-in adapters,
// gateway.NewFront: the binary's listener stack and server), in front of fake applications that
// misbehave on purpose: refusing connections, resetting before or in the middle of an answer, hanging,
// sending malformed or oversized heads, closing keep-alive connections under the gateway; and clients that
// attack the gateway itself: slowloris heads, stalled uploads, responses never read, too many connections,
// oversized bodies.
//
// Each case is named after the attack or fault and states what the client must see: a 502/504, a 408/413/
// 503, or an aborted stream, never an answer that looks complete but is not; and in every case a healthy
// route on the same gateway keeps answering 200. The package holds no non-test code.
package faults
