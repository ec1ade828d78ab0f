//go:build linux

package gateway

import (
	"strings"
	"testing"
)

// cascadeAnswers are the answers of the fall-through chain's two apps, both the one raw backend: the
// primary under /p, the delegate under /d.
var cascadeAnswers = map[string]string{
	"/p/x":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
	"/d/x":  laneAnswers["/cl"],
	"/p/y":  laneAnswers["/cl"],
	"/p/z":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnop\r\n0\r\n\r\n",
	"/d/z":  laneAnswers["/cl"],
	"/p/w":  "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop",
	"/d/w":  laneAnswers["/cl"],
	"/p/v":  "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
	"/d/v":  laneAnswers["/cl"],
	"/p/u":  "STALL",
	"/p/t":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
	"/d/t":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 14\r\n\r\n<p>nothing</p>",
	"/p/s":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
	"/d/s":  laneAnswers["/chunked"],
	"/p/q":  "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
	"/d/q":  laneAnswers["/cl"],
	"/p/r":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nnoXYZ",
	"/d/r":  laneAnswers["/cl"],
	"/p/c":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
	"/d/c":  laneAnswers["/cl"],
	"/p/d":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
	"/d/d":  "STALL",
	"/p/g":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n\x00not found",
	"/d/g":  laneAnswers["/cl"],
	"/p/e":  "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\n\x00not",
	"/d/e":  laneAnswers["/cl"],
	"/p/cl": laneAnswers["/cl"],
}

var cascadeCases = []laneCase{
	{"the primary's 404 passes, the delegate answers", "GET /x?q=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nX-Request-Id: c1\r\n\r\n", "GET"},
	{"the primary answers", "GET /y HTTP/1.1\r\nHost: a\r\nX-Request-Id: c2\r\n\r\n", "GET"},
	{"a chunked 404 passes (the handler chain's cascade)", "GET /z HTTP/1.1\r\nHost: a\r\nX-Request-Id: c3\r\n\r\n", "GET"},
	{"a 404 without a type passes", "GET /w HTTP/1.1\r\nHost: a\r\nX-Request-Id: c4\r\n\r\n", "GET"},
	{"an empty 404 passes", "GET /v HTTP/1.1\r\nHost: a\r\nX-Request-Id: c5\r\n\r\n", "GET"},
	{"the primary times out (504, final)", "GET /u HTTP/1.1\r\nHost: a\r\nX-Request-Id: c6\r\n\r\n", "GET"},
	{"both answer 404: the delegate's is final", "GET /t HTTP/1.1\r\nHost: a\r\nX-Request-Id: c7\r\n\r\n", "GET"},
	{"the delegate answers chunked", "GET /s HTTP/1.1\r\nHost: a\r\nX-Request-Id: c8\r\n\r\n", "GET"},
	{"1xx, then a 404 that passes", "GET /q HTTP/1.1\r\nHost: a\r\nX-Request-Id: c9\r\n\r\n", "GET"},
	{"a 404 with bytes after its body", "GET /r HTTP/1.1\r\nHost: a\r\nX-Request-Id: c10\r\n\r\n", "GET"},
	{"a 404 that closes its connection", "GET /c HTTP/1.1\r\nHost: a\r\nX-Request-Id: c11\r\n\r\n", "GET"},
	{"the delegate times out", "GET /d HTTP/1.1\r\nHost: a\r\nX-Request-Id: c12\r\n\r\n", "GET"},
	{"a POST: both apps get its body", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Request-Id: c13\r\n\r\nhello", "POST"},
	{"HEAD", "HEAD /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: c14\r\n\r\n", "HEAD"},
	{"a 404 whose body comes after its head", "GET /g HTTP/1.1\r\nHost: a\r\nX-Request-Id: c17\r\n\r\n", "GET"},
	{"a 404 whose body is cut", "GET /e HTTP/1.1\r\nHost: a\r\nX-Request-Id: c18\r\n\r\n", "GET"},
	{"pipelined: a pass, then the primary", "GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: c15\r\n\r\nGET /y HTTP/1.1\r\nHost: a\r\nX-Request-Id: c16\r\n\r\n", "GET"},
}

// TestTheLoopsCascadeAsNetHTTPDoes is the differential test of the fall-through chain (GATEWAY_PRIMARY
// and GATEWAY_DELEGATES): for the same requests the client and both apps get the same bytes, and the log,
// the metrics (pass-throughs included) and the ledger agree, with the lane on as off. The loops ask the
// apps in turn themselves when the primary's answer that passes is simple and read whole; any other is
// discarded by the handler chain's cascade, which asks the next app.
func TestTheLoopsCascadeAsNetHTTPDoes(t *testing.T) {
	second := startRawBackend(t, cascadeAnswers).ln.Addr().String()
	for _, tc := range []struct{ name, delegate string }{
		{"one instance each", "http://(app)/d/?timeout=300ms"},
		// The loops carry an app of several instances too, as its balancer does (lanebalance_test.go).
		{"a delegate of two instances", "http://(app)/d/|http://" + second + "/d/?timeout=300ms&max_fails=0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := []string{"GATEWAY_PRIMARY", "http://(app)/p/?timeout=300ms", "GATEWAY_DELEGATES", tc.delegate}
			off, offLog, offCounts, _ := runCases(t, cascadeAnswers, cascadeCases, false, env...)
			if !strings.Contains(offCounts, "switchyard_cascade_pass_throughs_total[app=(app)/d") {
				t.Fatalf("no pass-throughs counted:\n%s", offCounts)
			}
			onLaneSettings(t, cascadeAnswers, cascadeCases, env, laneRun{off, offLog, offCounts}, func(t *testing.T, loops string, f *Front) {
				if n := f.Lane.Looped(); (loops == "0") != (n >= 15) {
					t.Errorf("the event loops finished %d exchanges", n)
				}
			})
		})
	}
}
