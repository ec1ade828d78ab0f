package adversarial

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// framingCase is one request stream sent on a fresh connection, what the client must get back and what
// the backend must have received.
type framingCase struct {
	name string
	raw  string
	// statuses are the final responses the client must read, in order. When the last one announces
	// Connection: close the connection must really close.
	statuses []int
	// close says the gateway must close the connection after the last response.
	close bool
	// backend lists "METHOD target" of every request the backend must receive, in order; nil means none.
	backend []string
	// partial allows the backend to have seen the start of one more request that was cut off (a body
	// whose framing turned out to be bad only after the head was forwarded); the connection it came on
	// must then have been closed, never reused.
	partial bool
	// check inspects the backend's requests further.
	check func(t *testing.T, reqs []seenRequest)
}

const host = "Host: gw.test\r\n"

// smuggled is the marker target of every request hidden inside another: no backend may ever see it as a
// request.
const smuggled = "/smuggled"

func runFraming(t *testing.T, env map[string]string, cases []framingCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, "primary")
			e := map[string]string{"GATEWAY_PRIMARY": rec.URL(), "GATEWAY_MAX_HEADER_SIZE": "8KiB"}
			for k, v := range env {
				e[k] = v
			}
			addr, stop := startGateway(t, e)
			replies, closed := exchange(t, addr, tc.raw, len(tc.statuses))
			stop()
			reqs, broken := rec.record()

			if got := statuses(replies); !slices.Equal(got, tc.statuses) {
				t.Errorf("statuses %v, want %v (bodies %q)", got, tc.statuses, bodies(replies))
			}
			if tc.close && !closed {
				t.Errorf("the connection stayed open; it must close after this request")
			}
			if got := targets2(reqs); !slices.Equal(got, tc.backend) {
				t.Errorf("backend received %v, want %v", got, tc.backend)
			}
			for _, r := range reqs {
				if strings.Contains(r.Target, smuggled) {
					t.Errorf("SMUGGLED: the backend received %s %s as a request of its own", r.Method, r.Target)
				}
			}
			switch {
			case len(broken) > 1 || len(broken) == 1 && !tc.partial:
				t.Errorf("the backend received malformed or cut-off requests: %q", broken)
			case len(broken) == 1 && !strings.Contains(broken[0], errIncomplete.Error()):
				t.Errorf("the backend received a malformed request: %q", broken)
			}
			if tc.check != nil {
				tc.check(t, reqs)
			}
		})
	}
}

func targets2(rs []seenRequest) []string {
	if len(rs) == 0 {
		return nil
	}
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Method + " " + r.Target
	}
	return out
}

func bodies(rs []reply) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = strings.TrimSpace(r.Body)
	}
	return out
}

// body checks the one request the backend received has the given body.
func body(want string) func(t *testing.T, reqs []seenRequest) {
	return func(t *testing.T, reqs []seenRequest) {
		t.Helper()
		if len(reqs) > 0 && reqs[0].Body != want {
			t.Errorf("backend body %q, want %q", reqs[0].Body, want)
		}
	}
}

func chunk(s string) string { return fmt.Sprintf("%x\r\n%s\r\n", len(s), s) }

// smuggledGET is a complete request a lenient parser could find hidden inside another request's body.
const smuggledGET = "GET " + smuggled + " HTTP/1.1\r\n" + host + "\r\n"

func TestRequestSmuggling(t *testing.T) {
	runFraming(t, nil, []framingCase{
		{
			name: "CL.TE desync: Content-Length and Transfer-Encoding together are read as chunked and the connection closes (RFC 9112 6.1)",
			raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"0\r\n\r\n" + smuggledGET,
			statuses: []int{200}, close: true, backend: []string{"POST /a"}, check: body(""),
		},
		{
			name: "TE.CL desync: a chunked body holding a request is one body, whatever Content-Length says",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" +
				chunk(smuggledGET) + "0\r\n\r\n",
			statuses: []int{200}, close: true, backend: []string{"POST /a"}, check: body(smuggledGET),
		},
		{
			name: "TE.TE obfuscation: an unknown transfer coding (xchunked) is refused with 501 and nothing is forwarded",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n" +
				"0\r\n\r\n" + smuggledGET,
			statuses: []int{501}, close: true,
		},
		{
			name: "TE.TE obfuscation: a coding list ending in chunked (gzip, chunked) is refused",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n" +
				"0\r\n\r\n" + smuggledGET,
			statuses: []int{501}, close: true,
		},
		{
			name: "TE.TE obfuscation: two Transfer-Encoding fields are refused",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" +
				"0\r\n\r\n" + smuggledGET,
			statuses: []int{501}, close: true,
		},
		{
			name: "TE.TE obfuscation: a space before the colon in Transfer-Encoding is refused with 400",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n" +
				"0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name: "HTTP/1.0 keep-alive TE.CL desync: Transfer-Encoding next to Content-Length in HTTP/1.0 is refused with 400 and the connection closed (RFC 9112 6.1)",
			raw: "POST /a HTTP/1.0\r\n" + host + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" +
				"0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name: "HTTP/1.0 keep-alive with Transfer-Encoding and no Content-Length is refused with 400 and the connection closed",
			raw: "POST /a HTTP/1.0\r\n" + host + "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" +
				chunk(smuggledGET) + "0\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name: "HTTP/1.0 with Transfer-Encoding in odd case, behind a well-formed HTTP/1.0 request on one connection, is refused alone",
			raw: "GET /a HTTP/1.0\r\n" + host + "Connection: keep-alive\r\n\r\n" +
				"GET /b HTTP/1.0\r\n" + host + "Connection: keep-alive\r\ntransfer-ENCODING: gzip\r\n\r\n",
			statuses: []int{200, 400}, close: true, backend: []string{"GET /a"},
		},
		{
			name:     "an empty Host in HTTP/1.1 is refused with 400",
			raw:      "GET /a HTTP/1.1\r\nHost:\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "HTTP/1.0 with an empty Host is served, as without one",
			raw:      "GET /a HTTP/1.0\r\nHost:\r\n\r\n",
			statuses: []int{200}, close: true, backend: []string{"GET /a"},
		},
		{
			name: "duplicate Content-Length with different values is refused with 400",
			raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n" +
				"hello!" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name: "duplicate Content-Length with equal values is forwarded once with one Content-Length",
			raw: "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello" +
				"GET /b HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
			statuses: []int{200, 200}, close: true, backend: []string{"POST /a", "GET /b"}, check: body("hello"),
		},
		{
			name:     "a Content-Length list (5, 5) is refused with 400",
			raw:      "POST /a HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\nhello" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name:     "a signed Content-Length (+5) is refused with 400",
			raw:      "POST /a HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name:     "a negative Content-Length is refused with 400",
			raw:      "POST /a HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name:     "a hexadecimal Content-Length (0x5) is refused with 400",
			raw:      "POST /a HTTP/1.1\r\n" + host + "Content-Length: 0x5\r\n\r\nhello" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name:     "obsolete line folding in an ordinary field is unfolded to one line before forwarding (RFC 9112 5.2)",
			raw:      "GET /a HTTP/1.1\r\n" + host + "X-Folded: one\r\n two\r\nConnection: close\r\n\r\n",
			statuses: []int{200}, close: true, backend: []string{"GET /a"},
			check: func(t *testing.T, reqs []seenRequest) {
				if len(reqs) == 1 && strings.ContainsAny(reqs[0].Header.Get("X-Folded"), "\r\n") {
					t.Errorf("folded value forwarded with a line break: %q", reqs[0].Header.Get("X-Folded"))
				}
			},
		},
		{
			name:     "obsolete line folding that splits Content-Length is refused with 400",
			raw:      "POST /a HTTP/1.1\r\n" + host + "Content-Length: 1\r\n 0\r\n\r\nhelloworld" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name:     "obsolete line folding on the first header line is refused with 400",
			raw:      "GET /a HTTP/1.1\r\n X-Lead: x\r\n" + host + "\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name: "a non-hexadecimal chunk size is refused with 400 and the connection closes",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
				"zz\r\nhello\r\n0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true, partial: true,
		},
		{
			name: "an overflowing chunk size is refused with 400 and the connection closes",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
				"fffffffffffffffff5\r\nhello\r\n0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true, partial: true,
		},
		{
			name: "a negative chunk size is refused with 400 and the connection closes",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
				"-5\r\nhello\r\n0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true, partial: true,
		},
		{
			name: "a chunk-size line ended by a bare LF is refused (CVE-2025-22871)",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
				"5\nhello\r\n0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true, partial: true,
		},
		{
			name: "chunk data not followed by CRLF is refused with 400",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
				"5\r\nhelloXX0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true, partial: true,
		},
		{
			name: "a Content-Length trailer after a chunked body is never forwarded",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
				"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n" + smuggledGET,
			statuses: []int{200}, close: true, backend: []string{"POST /a"},
			check: func(t *testing.T, reqs []seenRequest) {
				if len(reqs) == 1 && (reqs[0].Body != "hello" || len(reqs[0].Trailer) > 0) {
					t.Errorf("backend got body %q trailer %v", reqs[0].Body, reqs[0].Trailer)
				}
			},
		},
		{
			name: "chunk-extension flooding, little data under much framing, is refused with 400 (CVE-2023-39326)",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n" +
				strings.Repeat("1;ext="+strings.Repeat("e", 2000)+"\r\nx\r\n", 40) + "0\r\n\r\n" + smuggledGET,
			statuses: []int{400}, close: true, partial: true,
		},
		{
			name:     "a space before the colon in Content-Length is refused with 400",
			raw:      "POST /a HTTP/1.1\r\n" + host + "Content-Length : 5\r\n\r\nhello" + smuggledGET,
			statuses: []int{400}, close: true,
		},
		{
			name:     "an HTTP/0.9 request line (no version) is refused with 400",
			raw:      "GET /a\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "an empty line before the request line is refused with 400 (net/http does not take the RFC 9112 2.2 leniency)",
			raw:      "\r\nGET /a HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "a control byte in the Host header is refused with 400",
			raw:      "GET /a HTTP/1.1\r\nHost: gw.test\x01evil\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name: "forwarding headers sent as request trailers never reach an app",
			raw: "POST /a HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTrailer: X-Forwarded-For, X-Real-IP, SCRIPT_NAME\r\n\r\n" +
				"5\r\nhello\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nSCRIPT_NAME: /evil\r\n\r\n",
			statuses: []int{200}, close: true, backend: []string{"POST /a"},
			check: func(t *testing.T, reqs []seenRequest) {
				if len(reqs) == 1 && (reqs[0].Body != "hello" || len(reqs[0].Trailer) > 0 || len(reqs[0].Header.Values("Trailer")) > 0) {
					t.Errorf("backend got body %q, trailer %v, Trailer field %q", reqs[0].Body, reqs[0].Trailer, reqs[0].Header.Values("Trailer"))
				}
			},
		},
		{
			name:     "bare LF line ends in the request head are read as CRLF and forwarded as one well-formed request",
			raw:      "GET /a HTTP/1.1\nHost: gw.test\nX-A: 1\n\nGET /b HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
			statuses: []int{200, 200}, close: true, backend: []string{"GET /a", "GET /b"},
		},
		{
			name:     "a bare CR inside a header value is refused with 400",
			raw:      "GET /a HTTP/1.1\r\n" + host + "X-A: one\rX-B: two\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "a NUL byte in the request target is refused with 400",
			raw:      "GET /a\x00b HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "a NUL byte in a header value is refused with 400",
			raw:      "GET /a HTTP/1.1\r\n" + host + "X-A: one\x00two\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "a control byte in a header name is refused with 400",
			raw:      "GET /a HTTP/1.1\r\n" + host + "X-\x01A: one\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "a control byte in the request target is refused with 400",
			raw:      "GET /a\x7fb HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "a request line with a doubled space is refused with 400",
			raw:      "GET  /a HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "an HTTP/1.1 request without Host is refused with 400",
			raw:      "GET /a HTTP/1.1\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "two Host fields are refused with 400",
			raw:      "GET /a HTTP/1.1\r\n" + host + "Host: other.test\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "a higher HTTP/1 minor version (HTTP/1.2) is served as HTTP/1.1 and forwarded as one HTTP/1.1 request",
			raw:      "GET /a HTTP/1.2\r\n" + host + "Connection: close\r\n\r\n",
			statuses: []int{200}, close: true, backend: []string{"GET /a"},
			check: func(t *testing.T, reqs []seenRequest) {
				if len(reqs) == 1 && reqs[0].Proto != "HTTP/1.1" {
					t.Errorf("forwarded as %s", reqs[0].Proto)
				}
			},
		},
		{
			name:     "an HTTP/2.0 request line over HTTP/1 is refused with 505",
			raw:      "GET /a HTTP/2.0\r\n" + host + "\r\n",
			statuses: []int{505}, close: true,
		},
		{
			name:     "an unparsable HTTP version (HTTP/1.1.1) is refused with 400",
			raw:      "GET /a HTTP/1.1.1\r\n" + host + "\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "h2c smuggling: the HTTP/2 prior-knowledge preface on a cleartext HTTP/1 port never reaches an app",
			raw:      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
			statuses: []int{400}, close: true,
		},
		{
			name:     "an oversized request line gets 431",
			raw:      "GET /" + strings.Repeat("a", 16<<10) + " HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{431}, close: true,
		},
		{
			name:     "an oversized header field gets 431",
			raw:      "GET /a HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 16<<10) + "\r\n\r\n",
			statuses: []int{431}, close: true,
		},
		{
			name:     "many small header fields over the limit together get 431",
			raw:      "GET /a HTTP/1.1\r\n" + host + strings.Repeat("X-Small: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 600) + "\r\n",
			statuses: []int{431}, close: true,
		},
		{
			name:     "an unknown expectation gets 417 and nothing is forwarded",
			raw:      "POST /a HTTP/1.1\r\n" + host + "Expect: 200-ok\r\nContent-Length: 5\r\n\r\nhello",
			statuses: []int{417}, close: true,
		},
		{
			name:     "HTTP/1.0 without Host is served once and the connection closes",
			raw:      "GET /a HTTP/1.0\r\n\r\nGET " + smuggled + " HTTP/1.0\r\n\r\n",
			statuses: []int{200}, close: true, backend: []string{"GET /a"},
		},
		{
			name: "HTTP/1.0 keep-alive requests are forwarded one by one",
			raw: "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n" + host + "\r\n" +
				"GET /b HTTP/1.0\r\n" + host + "\r\n",
			statuses: []int{200, 200}, close: true, backend: []string{"GET /a", "GET /b"},
		},
		{
			name: "pipelined requests are answered in order, each forwarded exactly once",
			raw: "GET /a HTTP/1.1\r\n" + host + "\r\n" +
				"POST /b HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello" +
				"GET /c HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
			statuses: []int{200, 200, 200}, close: true, backend: []string{"GET /a", "POST /b", "GET /c"},
		},
		{
			name: "a GET with a Content-Length body: the body is the body, the request after it is the next request",
			raw: "GET /a HTTP/1.1\r\n" + host + "Content-Length: 5\r\n\r\nhello" +
				"GET /b HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n",
			statuses: []int{200, 200}, close: true, backend: []string{"GET /a", "GET /b"}, check: body("hello"),
		},
		{
			name:     "CONNECT is never tunnelled to an app",
			raw:      "CONNECT gw.test:443 HTTP/1.1\r\n" + host + "\r\n",
			statuses: []int{405}, close: true,
		},
	})
}

func TestExpectContinue(t *testing.T) {
	t.Run("Expect: 100-continue gets one 100 Continue, then the body is forwarded once", func(t *testing.T) {
		rec := newRecorder(t, "primary")
		addr, stop := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL()})
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(ioTimeout))
		io.WriteString(c, "POST /a HTTP/1.1\r\n"+host+"Expect: 100-continue\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusContinue {
			t.Fatalf("first response %v (%v), want 100 Continue before the body is sent", resp, err)
		}
		io.WriteString(c, "hello")
		replies, _ := readReplies(t, c, br, 1)
		stop()
		reqs, broken := rec.record()
		if len(replies) != 1 || replies[0].Status != 200 {
			t.Fatalf("replies %v", statuses(replies))
		}
		if len(replies[0].Interim) > 0 {
			t.Errorf("interim responses %v after the first 100 Continue", replies[0].Interim)
		}
		if len(reqs) != 1 || reqs[0].Body != "hello" || len(broken) > 0 {
			t.Errorf("backend received %v %q", targets(reqs), broken)
		}
	})
	t.Run("Expect: 100-continue with a declared body over the limit gets 413 and no 100 Continue", func(t *testing.T) {
		rec := newRecorder(t, "primary")
		addr, stop := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(), "GATEWAY_MAX_BODY_SIZE": "1KiB"})
		replies, closed := exchange(t, addr, "POST /a HTTP/1.1\r\n"+host+"Expect: 100-continue\r\nContent-Length: 4096\r\n\r\n", 1)
		stop()
		reqs, _ := rec.record()
		if len(replies) != 1 || replies[0].Status != 413 || len(replies[0].Interim) > 0 || !closed {
			t.Errorf("replies %v (interim %v), closed %v; want one 413, no 100, connection closed", statuses(replies), interimOf(replies), closed)
		}
		if len(reqs) > 0 {
			t.Errorf("backend received %v", targets(reqs))
		}
	})
}

// TestExpectContinueRefusedInsideTheGateway checks the same for refusals further in (route and global
// middleware answering 413 with Connection: close): net/http would otherwise wait, without any deadline,
// for the body of a client that rightly waits for a 100 Continue that never comes.
func TestExpectContinueRefusedInsideTheGateway(t *testing.T) {
	rec := newRecorder(t, "primary")
	addr, stop := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(), "GATEWAY_MIDDLEWARE": "body_limit(max=1KiB)"})
	replies, closed := exchange(t, addr, "POST /a HTTP/1.1\r\n"+host+"Expect: 100-continue\r\nContent-Length: 4096\r\n\r\n", 1)
	stop()
	reqs, _ := rec.record()
	if len(replies) != 1 || replies[0].Status != 413 || len(replies[0].Interim) > 0 || !closed {
		t.Errorf("replies %v (interim %v), closed %v; want one 413, no 100, connection closed", statuses(replies), interimOf(replies), closed)
	}
	if len(reqs) > 0 {
		t.Errorf("backend received %v", targets(reqs))
	}
}

func interimOf(rs []reply) [][]int {
	out := make([][]int, len(rs))
	for i, r := range rs {
		out[i] = r.Interim
	}
	return out
}

// TestNoByteCrossesClients sends, from many clients at once, requests whose bodies stop short of their
// declared length (the client then goes away) next to complete ones. The gateway pools its connections to
// the backend, so a cut-off body left on a pooled connection would prefix the next client's request: the
// backend must see every complete request whole, on its own, and no complete request after a cut one on
// the same connection.
func TestNoByteCrossesClients(t *testing.T) {
	rec := newRecorder(t, "primary")
	addr, stop := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(), "GATEWAY_ROUTES": "/direct/=" + rec.URL()})
	const clients = 12
	var wg sync.WaitGroup
	errs := make(chan error, 2*clients)
	for i := 0; i < clients; i++ {
		for _, prefix := range []string{"", "/direct"} {
			wg.Add(2)
			go func() { // cut off: declares 100 bytes, sends 40 that look like a request, leaves
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				c.SetDeadline(time.Now().Add(ioTimeout))
				io.WriteString(c, fmt.Sprintf("POST %s/cut%d HTTP/1.1\r\n%sContent-Length: 100\r\n\r\nGET %s HTTP/1.1\r\nX: ", prefix, i, host, smuggled))
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
				c.Close()
			}()
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				want := fmt.Sprintf("%s/whole%d", prefix, i)
				io.WriteString(c, fmt.Sprintf("POST %s HTTP/1.1\r\n%sContent-Length: 5\r\nConnection: close\r\n\r\nhello", want, host))
				rs, _ := readReplies(t, c, bufio.NewReader(c), 1)
				if len(rs) != 1 || rs[0].Status != 200 || !strings.Contains(rs[0].Body, want) {
					errs <- fmt.Errorf("%s: got %v %q", want, statuses(rs), bodies(rs))
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	stop()
	reqs, _ := rec.record()
	whole := 0
	for _, r := range reqs {
		switch {
		case strings.Contains(r.Target, smuggled):
			t.Errorf("SMUGGLED: %s %s", r.Method, r.Target)
		case strings.Contains(r.Target, "/whole"):
			whole++
			if r.Body != "hello" {
				t.Errorf("%s arrived with body %q", r.Target, r.Body)
			}
		case strings.Contains(r.Target, "/cut"):
			t.Errorf("a cut-off request arrived complete: %s %q", r.Target, r.Body)
		}
	}
	if whole != 2*clients {
		t.Errorf("%d complete requests arrived, want %d: %v", whole, 2*clients, targets(reqs))
	}
}
