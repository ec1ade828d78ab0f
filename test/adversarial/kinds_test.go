package adversarial

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// The same answer, sent by an app over HTTP, FastCGI, uwsgi and SCGI, must reach the client alike: one
// hop-by-hop list, one rule for the fields an app's Connection field names, the same framing (the
// architecture issue's safety net for the one response relay). Each protocol carries the answer in its
// own form: an HTTP/1.1 status line (HTTP, uwsgi, SCGI may use either) or a CGI Status field (FastCGI,
// SCGI).

// kindAnswer is an app's answer: status, header lines in order, body. An answer with raw set is sent as
// those bytes by the protocols that carry an HTTP/1.1 answer (HTTP, uwsgi, SCGI), not by FastCGI, whose CGI
// head has no informational answers, chunking or trailers.
type kindAnswer struct {
	status int
	fields []string
	body   string
	raw    string
	// noLength leaves Content-Length out: the body runs to the end of the app's stream (the connection's
	// end, or END_REQUEST).
	noLength bool
}

// answer is what an app sends: raw, or the head (a CGI head when cgi) and the body.
func (a kindAnswer) answer(cgi bool) string {
	if a.raw != "" {
		return a.raw
	}
	return a.head(cgi) + a.body
}

func (a kindAnswer) head(cgi bool) string {
	var b strings.Builder
	if cgi {
		fmt.Fprintf(&b, "Status: %d %s\r\n", a.status, http.StatusText(a.status))
	} else {
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", a.status, http.StatusText(a.status))
	}
	for _, f := range a.fields {
		b.WriteString(f + "\r\n")
	}
	if a.status != http.StatusNoContent && a.status != http.StatusNotModified && !a.noLength {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(a.body))
	}
	b.WriteString("\r\n")
	return b.String()
}

var kindAnswers = map[string]kindAnswer{
	"plain":            {200, []string{"Content-Type: text/plain", "X-A: 1"}, "hello", "", false},
	"connection-named": {200, []string{"Content-Type: text/plain", "Connection: X-Secret, keep-alive", "X-Secret: internal", "Keep-Alive: timeout=5", "X-Kept: k"}, "ok", "", false},
	"hop-by-hop":       {200, []string{"Content-Type: text/plain", "Proxy-Connection: keep-alive", "Upgrade: h2c", "Te: trailers", "Proxy-Authenticate: Basic", "X-Kept: k"}, "ok", "", false},
	"cookies":          {200, []string{"Content-Type: text/html", "Set-Cookie: a=1; Path=/", "Set-Cookie: b=2; HttpOnly", "Cache-Control: no-store"}, "<p>x</p>", "", false},
	"created":          {201, []string{"Location: /items/7", "Content-Type: application/json"}, `{"id":7}`, "", false},
	"not found":        {404, []string{"Content-Type: text/html; charset=utf-8"}, "<h1>Not Found</h1>", "", false},
	"no content":       {204, []string{"X-A: 1"}, "", "", false},
	"empty":            {200, []string{"Content-Type: text/plain"}, "", "", false},
	"no content type":  {200, []string{"X-A: 1"}, "<html><body>x</body></html>", "", false},
	"unknown length":   {200, []string{"Content-Type: text/plain", "X-A: 1"}, "a body of unknown length", "", true},
	"early hints": {200, nil, "ok", "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", false},
	"trailers": {200, nil, "hello", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Checksum\r\n" +
		"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", false},
	"chunked connection-named": {200, nil, "hello", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" +
		"Connection: X-Secret\r\nX-Secret: internal\r\nX-Kept: k\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", false},
}

// answerFor picks the answer a request names in its last path segment.
func answerFor(path string) kindAnswer {
	name := path[strings.LastIndexByte(path, '/')+1:]
	name = strings.ReplaceAll(name, "_", " ")
	return kindAnswers[name]
}

// httpKindApp answers one request per connection with the raw HTTP answer.
func httpKindApp(t *testing.T) string {
	return "http://" + testpeer.ServeTCP(t, func(c net.Conn) {
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		a := answerFor(r.URL.Path)
		io.WriteString(c, a.answer(false))
	})
}

// uwsgiKindApp reads a uwsgi packet (4-byte header, u16-length-prefixed pairs) and answers with HTTP.
func uwsgiKindApp(t *testing.T) string {
	return "uwsgi://" + testpeer.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		vars := make([]byte, binary.LittleEndian.Uint16(hdr[1:3]))
		if _, err := io.ReadFull(br, vars); err != nil {
			return
		}
		env := map[string]string{}
		for len(vars) >= 2 {
			kl := int(binary.LittleEndian.Uint16(vars))
			k := string(vars[2 : 2+kl])
			vars = vars[2+kl:]
			vl := int(binary.LittleEndian.Uint16(vars))
			env[k] = string(vars[2 : 2+vl])
			vars = vars[2+vl:]
		}
		a := answerFor(env["SCRIPT_NAME"] + env["PATH_INFO"])
		io.WriteString(c, a.answer(false))
	})
}

// scgiKindApp reads an SCGI netstring of NUL-separated pairs and answers with a CGI head.
func scgiKindApp(t *testing.T) string {
	return "scgi://" + testpeer.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		n, err := br.ReadString(':')
		if err != nil {
			return
		}
		size, _ := strconv.Atoi(strings.TrimSuffix(n, ":"))
		vars := make([]byte, size+1) // the pairs and the trailing ','
		if _, err := io.ReadFull(br, vars); err != nil {
			return
		}
		parts := strings.Split(string(vars[:size]), "\x00")
		env := map[string]string{}
		for i := 0; i+1 < len(parts); i += 2 {
			env[parts[i]] = parts[i+1]
		}
		a := answerFor(env["SCRIPT_NAME"] + env["PATH_INFO"])
		io.WriteString(c, a.answer(true))
	})
}

// fastcgiKindApp reads FastCGI records up to the empty STDIN and answers on STDOUT with a CGI head.
func fastcgiKindApp(t *testing.T) string {
	return "fastcgi://" + testpeer.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		env := map[string]string{}
		var id uint16
		for {
			var h [8]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return
			}
			id = binary.BigEndian.Uint16(h[2:4])
			content := make([]byte, int(binary.BigEndian.Uint16(h[4:6]))+int(h[6]))
			if _, err := io.ReadFull(br, content); err != nil {
				return
			}
			content = content[:binary.BigEndian.Uint16(h[4:6])]
			if h[1] == 4 { // PARAMS: name-value pairs with 1- or 4-byte lengths
				for len(content) > 0 {
					var l [2]int
					for i := range l {
						if content[0]>>7 == 0 {
							l[i], content = int(content[0]), content[1:]
						} else {
							l[i], content = int(binary.BigEndian.Uint32(content)&0x7fffffff), content[4:]
						}
					}
					env[string(content[:l[0]])] = string(content[l[0] : l[0]+l[1]])
					content = content[l[0]+l[1]:]
				}
			}
			if h[1] == 5 && len(content) == 0 { // the empty STDIN ends the request
				break
			}
		}
		a := answerFor(env["SCRIPT_NAME"] + env["PATH_INFO"])
		out := []byte(a.head(true) + a.body)
		record := func(typ byte, p []byte) {
			h := []byte{1, typ, byte(id >> 8), byte(id), byte(len(p) >> 8), byte(len(p)), 0, 0}
			c.Write(append(h, p...))
		}
		record(6, out)
		record(6, nil)
		record(3, make([]byte, 8)) // END_REQUEST: app status 0, request complete
	})
}

func TestEveryKindRelaysAnAnswerAlike(t *testing.T) {
	kinds := map[string]string{
		"/h/": httpKindApp(t),
		"/u/": uwsgiKindApp(t),
		"/s/": scgiKindApp(t),
		"/f/": fastcgiKindApp(t),
	}
	var routes []string
	for prefix, app := range kinds {
		routes = append(routes, prefix+"="+app)
	}
	addr, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": "status:404", "GATEWAY_ROUTES": strings.Join(routes, ",")})
	for name, answer := range kindAnswers {
		t.Run(name, func(t *testing.T) {
			target := "/x/" + strings.ReplaceAll(name, " ", "_")
			got := map[string]reply{}
			for prefix := range kinds {
				if prefix == "/f/" && answer.raw != "" {
					continue // FastCGI cannot carry it
				}
				replies, _ := exchange(t, addr, "GET "+prefix+target[3:]+" HTTP/1.1\r\nHost: example.test\r\n\r\n", 1)
				if len(replies) != 1 {
					t.Fatalf("%s: %d replies", prefix, len(replies))
				}
				r := replies[0]
				r.Header.Del("Date")
				r.Header.Del("X-Request-Id")
				r.Close = false
				got[prefix] = r
			}
			for prefix, r := range got {
				if d := cmp.Diff(got["/h/"], r); d != "" {
					t.Errorf("%s answers unlike HTTP (-http +%s):\n%s", kinds[prefix], prefix, d)
				}
			}
			if want := kindAnswers[name]; got["/h/"].Status != want.status || got["/h/"].Body != want.body {
				t.Errorf("HTTP: %d %q, want %d %q", got["/h/"].Status, got["/h/"].Body, want.status, want.body)
			}
			for prefix, r := range got {
				for _, hop := range []string{"X-Secret", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te", "Proxy-Authenticate"} {
					if v := r.Header.Get(hop); v != "" {
						t.Errorf("%s: %s: %q reached the client", kinds[prefix], hop, v)
					}
				}
				if strings.Contains(name, "named") || strings.Contains(name, "hop") {
					if r.Header.Get("X-Kept") != "k" {
						t.Errorf("%s: an end-to-end field was dropped: %v", kinds[prefix], r.Header)
					}
				}
				if name == "unknown length" && r.Header.Get("Content-Length") != "" {
					t.Errorf("%s: Content-Length %q for an answer of unknown length, want it streamed chunked", kinds[prefix], r.Header.Get("Content-Length"))
				}
				if name == "trailers" && r.Trailer.Get("X-Checksum") != "abc" {
					t.Errorf("%s: trailers %v, want X-Checksum: abc", kinds[prefix], r.Trailer)
				}
				if name == "early hints" && (len(r.Interim) != 1 || r.Interim[0] != http.StatusEarlyHints) {
					t.Errorf("%s: informational answers %v, want the 103", kinds[prefix], r.Interim)
				}
				if name == "cookies" && len(r.Header["Set-Cookie"]) != 2 {
					t.Errorf("%s: Set-Cookie %q, want both", kinds[prefix], r.Header["Set-Cookie"])
				}
			}
		})
	}
}
