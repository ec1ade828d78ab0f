// Package adversarial owns the gateway's adversarial test suite: requests built byte by byte on raw TCP
// (so malformed framing really goes out on the wire) against a gateway assembled in-process exactly as
// cmd/gateway assembles it (config.Load, gateway.Build, gateway.NewFront on a loopback listener), with
// recording backends behind it that keep every byte they receive.
//
// The suite guards three families of properties, one test case per attack, each named after the attack
// and, where one exists, the advisory it guards against:
//
//   - parsing and request smuggling: every malformed or ambiguous request is either refused with the
//     right status or forwarded as exactly one well-formed request, and no byte of one client's request
//     ever becomes part of another request (smuggling_test.go);
//   - routing integrity: every encoding of dot segments, separators, NUL, case and Unicode tricks, duplicate
//     slashes, absolute-form targets and Host games reaches only the route the normalised path and host
//     select, and an app mounted under a prefix never sees a path outside it (routing_test.go);
//   - header trust: forwarding and identity headers from untrusted peers never reach an application, hop-by-
//     hop games cannot remove the gateway's own headers, and h2c upgrades are never passed on
//     (headers_test.go).
//
// SECURITY.md at the repository root maps each item of the threat model to the test that guards it.
// The package holds no production code.
package adversarial
