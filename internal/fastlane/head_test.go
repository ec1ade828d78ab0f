package fastlane

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/switchyard/switchyard/router"
)

var testLimits = Limits{MaxHead: 8 << 10, MaxBody: 64 << 10}

func TestParseTakesOnlyTheStrictSubset(t *testing.T) {
	const ok = "GET /api/users/7?x=1&y=%2F HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n"
	tests := []struct {
		name, head string
		want       Verdict
	}{
		{"a plain GET", ok, Mine},
		{"HTTP/1.0 with Host", "GET / HTTP/1.0\r\nHost: a\r\n\r\n", Mine},
		{"a POST with a small length", "POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", Mine},
		{"Connection: keep-alive", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n", Mine},
		{"an unfinished head", "GET / HTTP/1.1\r\nHost: a\r\n", Incomplete},
		{"nothing yet", "", Incomplete},
		{"a bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", NotMine},
		{"a bare LF in an unfinished head", "GET / HTTP/1.1\nHo", NotMine},
		{"a leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"a lone CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", NotMine},
		{"absolute-form", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"CONNECT", "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", NotMine},
		{"lowercase version", "GET / http/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"a non-token method", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"an escape in the path", "GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"a dot segment", "GET /a/../b HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"a double slash", "GET //b HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"a backslash", "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"path parameters", "GET /a;x=1 HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"a semicolon in the query", "GET /a?x=1;y=2 HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"a broken escape in the query", "GET /a?x=%G1 HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"non-ASCII in the path", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", NotMine},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", NotMine},
		{"HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", NotMine},
		{"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", NotMine},
		{"an empty Host", "GET / HTTP/1.1\r\nHost: \r\n\r\n", NotMine},
		{"an IPv6 Host", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", NotMine},
		{"an underscore in the Host", "GET / HTTP/1.1\r\nHost: a_b\r\n\r\n", NotMine},
		{"a Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", NotMine},
		{"an underscore in a name", "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1\r\n\r\n", NotMine},
		{"a space before the colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : 1\r\n\r\n", NotMine},
		{"obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n", NotMine},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n", NotMine},
		{"a non-ASCII value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \xc3\xa9\r\n\r\n", NotMine},
		{"Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", NotMine},
		{"Transfer-Encoding in any case", "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: chunked\r\n\r\n", NotMine},
		{"Upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", NotMine},
		{"Expect", "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", NotMine},
		{"Trailer", "GET / HTTP/1.1\r\nHost: a\r\nTrailer: X\r\n\r\n", NotMine},
		{"Proxy (httpoxy)", "GET / HTTP/1.1\r\nHost: a\r\nProxy: http://evil\r\n\r\n", NotMine},
		{"HTTP2-Settings", "GET / HTTP/1.1\r\nHost: a\r\nHTTP2-Settings: x\r\n\r\n", NotMine},
		{"Connection naming a field", "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Forwarded-For\r\n\r\n", NotMine},
		{"Connection with two tokens", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n", NotMine},
		{"two Connection fields", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nConnection: close\r\n\r\n", NotMine},
		{"two Content-Length fields", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", NotMine},
		{"a signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", NotMine},
		{"a list Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", NotMine},
		{"an empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", NotMine},
		{"a body past the limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n", NotMine},
		{"a head past the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 9000) + "\r\n\r\n", NotMine},
		{"an unfinished head at the limit", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 9000), NotMine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Head
			if got := Parse([]byte(tt.head), &h, testLimits); got != tt.want {
				t.Fatalf("Parse(%q) = %v, want %v", tt.head, got, tt.want)
			}
		})
	}
}

func TestParseFillsTheHead(t *testing.T) {
	in := []byte("POST /f/g?a=b HTTP/1.0\r\nHost: Example.COM\r\nConnection: keep-alive\r\nX-A:  1 \t\r\nContent-Length: 3\r\n\r\nabc")
	var h Head
	if v := Parse(in, &h, testLimits); v != Mine {
		t.Fatalf("Parse = %v", v)
	}
	if string(h.Method) != "POST" || string(h.Path) != "/f/g" || string(h.Query) != "a=b" || h.Minor != 0 ||
		string(h.Host) != "Example.COM" || h.ContentLength != 3 || h.Close || !h.KeepAlive10 || h.NFields != 4 ||
		string(h.Fields[2].Value) != "1" || string(in[h.Size:]) != "abc" {
		t.Fatalf("head: %+v", h)
	}
}

func TestParseAllocatesNothing(t *testing.T) {
	in := []byte("GET /api/users/7?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\nAccept-Language: en\r\nConnection: keep-alive\r\n\r\n")
	var h Head
	if n := testing.AllocsPerRun(100, func() { Parse(in, &h, testLimits) }); n != 0 {
		t.Fatalf("Parse allocates %v times per head, want 0", n)
	}
}

// FuzzHead holds Parse to net/http: whatever Parse takes, http.ReadRequest followed by the server's own
// checks of a read request (net/http's conn.readRequest: a Host in HTTP/1.1, one valid Host, valid field
// names and values) takes too, and the request Head.Request builds has the same method, target, URL,
// Host, fields, length and Close; the front door (router.Sanitize) then routes it with its path unchanged.
func FuzzHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /api/users/7?x=1&y=%2F HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
		"POST /f HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
		"GET / HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A:\t v \t\r\nx-a: w\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Head
		if Parse(in, &h, testLimits) != Mine {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			t.Fatalf("Parse took %q, http.ReadRequest refuses it: %v", in, err)
		}
		tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(in)))
		if _, err := tp.ReadLine(); err != nil {
			t.Fatal(err)
		}
		raw, err := tp.ReadMIMEHeader() // the fields before http.ReadRequest takes Host out
		if err != nil {
			t.Fatalf("Parse took %q, textproto refuses its fields: %v", in, err)
		}
		if err := serverChecks(want, raw["Host"]); err != "" {
			t.Fatalf("Parse took %q, net/http's server refuses it: %s", in, err)
		}
		got := h.Request(context.Background(), in, "192.0.2.1:1234", nil)
		if got.Method != want.Method || got.RequestURI != want.RequestURI || *got.URL != *want.URL ||
			got.Host != want.Host || got.ProtoMinor != want.ProtoMinor || got.Proto != want.Proto ||
			got.ContentLength != want.ContentLength || got.Close != want.Close ||
			!reflect.DeepEqual(got.Header, want.Header) || len(want.TransferEncoding) > 0 || want.Trailer != nil {
			t.Fatalf("for %q\n lane:     %s %s %+v host %q 1.%d len %d close %v %v\n net/http: %s %s %+v host %q 1.%d len %d close %v %v",
				in, got.Method, got.RequestURI, *got.URL, got.Host, got.ProtoMinor, got.ContentLength, got.Close, got.Header,
				want.Method, want.RequestURI, *want.URL, want.Host, want.ProtoMinor, want.ContentLength, want.Close, want.Header)
		}
		if got.ContentLength > 0 && len(in)-h.Size >= int(got.ContentLength) {
			var b bytes.Buffer
			if _, err := b.ReadFrom(want.Body); err != nil || !bytes.Equal(b.Bytes(), in[h.Size:h.Size+int(got.ContentLength)]) {
				t.Fatalf("for %q the body net/http reads is %q (%v)", in, b.Bytes(), err)
			}
		}
		path, served := "", false
		router.Sanitize(router.SanitizeConfig{MaxBodySize: testLimits.MaxBody})(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			path, served = r.URL.Path, r.URL.RawPath == ""
		})).ServeHTTP(discard{}, got)
		if !served || path != string(h.Path) {
			t.Fatalf("for %q the front door routes %q (served %v), the lane's path is %q", in, path, served, h.Path)
		}
	})
}

// serverChecks are the checks net/http's server makes of a request http.ReadRequest read, before its
// handler runs (net/http's conn.readRequest).
func serverChecks(r *http.Request, hosts []string) string {
	haveHost := hosts != nil
	if r.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && r.Method != "CONNECT" {
		return "missing required Host header"
	}
	if len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]) {
		return "malformed Host header"
	}
	for k, vv := range r.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "invalid header value"
			}
		}
	}
	return ""
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}
