//go:build linux

package gateway

import (
	"maps"
	"strings"
	"testing"
)

// mountCases are requests to routes that tell their app its prefix: /new/ strips it (strip_prefix, with
// X-Forwarded-Prefix), /sn/ sends the whole path and SCRIPT_NAME (prefix_header=script_name, gunicorn's
// form), /xfp/ is prefix_header=x-forwarded-prefix.
var mountCases = []laneCase{
	{"strip: a GET below the prefix", "GET /new/cl?x=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: t\r\nX-Request-Id: m1\r\n\r\n", "GET"},
	{"strip: the prefix itself", "GET /new HTTP/1.1\r\nHost: a\r\nX-Request-Id: m2\r\n\r\n", "GET"},
	{"strip: the prefix with its slash", "GET /new/ HTTP/1.1\r\nHost: a\r\nX-Request-Id: m3\r\n\r\n", "GET"},
	{"strip: a POST", "POST /new/cl HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Request-Id: m4\r\n\r\nhello", "POST"},
	{"strip: HEAD", "HEAD /new/cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: m5\r\n\r\n", "HEAD"},
	{"strip: a chunked answer (the handler chain finishes it)", "GET /new/chunked HTTP/1.1\r\nHost: a\r\nX-Request-Id: m6\r\n\r\n", "GET"},
	{"strip: the app times out (504)", "GET /new/stall HTTP/1.1\r\nHost: a\r\nX-Request-Id: m7\r\n\r\n", "GET"},
	{"strip: an answer cut mid-body (logged with the app's path)", "GET /new/short HTTP/1.1\r\nHost: a\r\nX-Request-Id: m16\r\n\r\n", "GET"},
	{"strip: a client's own X-Forwarded-Prefix", "GET /new/cl HTTP/1.1\r\nHost: a\r\nX-Forwarded-Prefix: /evil\r\nX-Request-Id: m8\r\n\r\n", "GET"},
	{"strip: a path that only starts like the prefix", "GET /newer HTTP/1.1\r\nHost: a\r\nX-Request-Id: m9\r\n\r\n", "GET"},
	{"script_name: a GET", "GET /sn/cl?y=2 HTTP/1.1\r\nHost: a\r\nX-Request-Id: m10\r\n\r\n", "GET"},
	{"script_name: the prefix itself", "GET /sn HTTP/1.1\r\nHost: a\r\nX-Request-Id: m11\r\n\r\n", "GET"},
	{"script_name: a POST", "POST /sn/cl HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nX-Request-Id: m12\r\n\r\nhi", "POST"},
	{"script_name: a chunked answer", "GET /sn/chunked HTTP/1.1\r\nHost: a\r\nX-Request-Id: m13\r\n\r\n", "GET"},
	{"script_name: a client's own Script-Name", "GET /sn/cl HTTP/1.1\r\nHost: a\r\nScript-Name: /evil\r\nX-Request-Id: m14\r\n\r\n", "GET"},
	{"x-forwarded-prefix: a GET", "GET /xfp/deep/cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: m15\r\n\r\n", "GET"},
}

// TestTheExpressPathMountsRoutesAsNetHTTPDoes is the differential test of routes with a mount: for the
// same requests, the app gets the same request line and fields (the stripped path and X-Forwarded-Prefix,
// or the whole path and SCRIPT_NAME) and the client the same answer with the lane on as off, the log,
// metrics and migration ledger agree, and the event loops finish the simple exchanges themselves.
func TestTheExpressPathMountsRoutesAsNetHTTPDoes(t *testing.T) {
	answers := maps.Clone(laneAnswers) // by the path the app gets: stripped, or whole under /sn
	answers["/"], answers["/sn"], answers["/sn/cl"], answers["/deep/cl"] = laneAnswers["/cl"], laneAnswers["/cl"], laneAnswers["/cl"], laneAnswers["/cl"]
	answers["/sn/chunked"] = laneAnswers["/chunked"]
	routes := []string{"GATEWAY_ROUTES", "/new/=http://(app)?strip_prefix=true&timeout=300ms," +
		"/sn/=http://(app)?prefix_header=script_name,/xfp/=http://(app)?prefix_header=x-forwarded-prefix"}
	off, offLog, offCounts, _ := runCases(t, answers, mountCases, false, routes...)
	for _, want := range []string{"GET /cl?x=1 HTTP/1.1", "X-Forwarded-Prefix: /new\r\n", "GET /sn/cl?y=2 HTTP/1.1", "Script_name: /sn\r\n", "GET /deep/cl HTTP/1.1", "X-Forwarded-Prefix: /xfp\r\n"} {
		found := false
		for _, ex := range off {
			found = found || strings.Contains(ex.upstream, want)
		}
		if !found {
			t.Errorf("no request the app got has %q", want)
		}
	}
	onLaneSettings(t, answers, mountCases, routes, laneRun{off, offLog, offCounts}, func(t *testing.T, loops string, f *Front) {
		// Of the 16 cases (each with a follow-up GET of the primary's), the lane hands on the two
		// with a mount-point field of the client's; the answers that are not simple (chunked, the
		// 504, the 404 without a type) are finished by the handler chain after the express start.
		if n := f.Lane.Expressed(); n < 20 {
			t.Errorf("the express path took %d exchanges; want at least 20 of the 30", n)
		}
		if n := f.Lane.Looped(); (loops == "0") != (n >= 16) {
			t.Errorf("the event loops finished %d exchanges", n)
		}
	})
}
