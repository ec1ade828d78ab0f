package adversarial

import (
	"bufio"
	"crypto/tls"
	"io"
	"testing"
	"time"
)

// TestHTTP10OverTLSClosesItsConnection covers HTTP/1.0 requests over TLS, where the gateway cannot see a
// Transfer-Encoding field (net/http deletes it from an HTTP/1.0 request, and internal/headscan reads
// along plain-HTTP connections only): such a request is served as one without a body, and its connection
// closes after the answer, so the chunked body a front end sent behind it is never read as a request of
// its own. The smuggled request line below is a chunk-size line that a lenient front end, reading the hex
// digits and skipping to the line's end, takes for a chunk of 5 bytes, while net/http reads method "5".
func TestHTTP10OverTLSClosesItsConnection(t *testing.T) {
	const smuggled = "5 /smuggled HTTP/1.1\r\nHost: example.test\r\n\r\n"
	tests := []struct {
		name, raw string
	}{
		{"HTTP/1.0 keep-alive with Transfer-Encoding: chunked and a chunk-size line that parses as a request line",
			"POST /a HTTP/1.0\r\nHost: example.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
		{"HTTP/1.0 keep-alive GET with Transfer-Encoding",
			"GET /a HTTP/1.0\r\nHost: example.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + smuggled},
		{"HTTP/1.0 keep-alive with Transfer-Encoding next to Content-Length: 0",
			"POST /a HTTP/1.0\r\nHost: example.test\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n" + smuggled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder(t, "app")
			addr, _ := startTLSGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL()})
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioTimeout))
			if _, err := io.WriteString(c, tt.raw); err != nil {
				t.Fatal(err)
			}
			replies, closed := readReplies(t, c, bufio.NewReader(c), 2)
			if len(replies) != 1 || !replies[0].Close || !closed {
				t.Errorf("answers %v (Connection: close %v), connection closed %v; want one answer, then the connection closed",
					statuses(replies), len(replies) > 0 && replies[0].Close, closed)
			}
			got := waitRecorded(t, rec, 1)
			rec.mu.Lock()
			all := targets(rec.reqs)
			rec.mu.Unlock()
			if len(all) != 1 || got[0].Target != "/a" {
				t.Errorf("the app received %v; want only /a", all)
			}
		})
	}
}
