// Package fastlane owns the gateway's fast lane (issue 18): a strict HTTP/1.1 front end on the plain-HTTP
// listener that serves the requests it can prove it handles exactly as the net/http path would, and hands
// every other connection to net/http with the bytes it has already read.
//
// What it owns:
//
//   - Parse, a zero-allocation parser of a strict subset of HTTP/1.x request heads: the whole head in the
//     buffer, CRLF line ends only, a token method (not CONNECT), an origin-form target whose path needs no
//     cleaning or decoding (router.CleanPath leaves it unchanged, no '%' or ';'), HTTP/1.0 or HTTP/1.1,
//     field names that are tokens without '_', values of visible ASCII, SP and HTAB, exactly one Host (a
//     name or IPv4 address with an optional port that router.CanonicalHost accepts), no
//     Transfer-Encoding, Upgrade, Expect, Trailer, Proxy or HTTP2-Settings field, a Connection field that
//     is absent or exactly "keep-alive" or "close", and at most one decimal Content-Length within the
//     lane's body limit. Anything else is NotMine, however valid. FuzzHead holds it to net/http: whatever
//     Parse takes, http.ReadRequest and the server's own checks take too, with the same method, target,
//     Host, fields, length and Close.
//   - Head.Request, the *http.Request net/http's server would hand its handler for such a head.
//   - (Linux) the lane itself: Lane, a listener wrapper that reads each new connection's first bytes,
//     serves the requests that are its own through the gateway's handler (the same layers, route and
//     direct proxy path as net/http's), writing the answer as net/http's response writer would, and hands
//     the connection, with every byte read so far, to net/http (its Accept) at the first request that
//     is not. With Options.Parker (internal/idlepark's Listener, under the lane), a connection idle in
//     the lane after a request, with nothing pipelined, is parked after the parker's delay: its goroutine
//     ends, and it comes back through the wrapped listener's Accept when readable (see Parker).
//   - (Linux) the event loops (Options.Loops, one per GOMAXPROCS by default): the lane hands each new
//     connection to a loop, which holds it and the app connections of its express exchanges in one epoll
//     set, waited on through Go's netpoller, with non-blocking reads and writes, a timer heap, its own
//     pool of app connections and its own connects; it serves the express path with no goroutine per
//     connection, and moves a connection to a goroutine of the lane for good at the first thing it does
//     not finish itself (see loop_linux.go).
//     Elsewhere the lane passes every connection through.
package fastlane
