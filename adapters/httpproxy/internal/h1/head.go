package h1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
)

// ProtocolError is a malformed or unacceptable response from the application (the gateway answers 502).
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "h1: " + e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// errHeadTooLarge is a response head over the transport's MaxResponseHeaderBytes.
var errHeadTooLarge = &ProtocolError{Msg: "response head too large"}

// noBytesError is a read that failed before the application sent any byte of a response: on a reused
// connection it usually means the app closed the idle connection (the request may then be sent again).
type noBytesError struct{ err error }

func (e *noBytesError) Error() string { return e.err.Error() }
func (e *noBytesError) Unwrap() error { return e.err }

// readLines appends to buf the lines read from br up to and including the first empty line (a head: a
// status line and header fields, or a trailer section), at most limit bytes. Bare LF line ends are
// accepted, as net/http does. An EOF before any byte is a *noBytesError; an EOF within the head is
// io.ErrUnexpectedEOF.
func readLines(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	start := len(buf) // of the current line
	first := len(buf)
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag)-first > limit {
			return buf, errHeadTooLarge
		}
		buf = append(buf, frag...)
		switch err {
		case nil:
			line := buf[start:]
			if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
				return buf, nil
			}
			start = len(buf)
		case bufio.ErrBufferFull:
			// a line longer than the reader's buffer: keep appending
		default:
			if len(buf) == first {
				return buf, &noBytesError{err}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return buf, err
		}
	}
}

// nextLine cuts the first line (without its CR LF or LF) off s.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// head is a parsed response head.
type head struct {
	status  string // "200 OK", or "200" when the app sent no reason phrase
	code    int
	major   int
	minor   int
	header  http.Header
	chunked bool
	length  int64       // -1 when not declared
	close   bool        // Connection: close, or HTTP/1.0 without keep-alive
	trailer http.Header // declared trailer names with nil values
}

// parseHead parses a response head (from readLines) into h the way net/http's ReadResponse does, with these
// deliberate differences: only HTTP/1.0 and HTTP/1.1 are accepted, a status code must be 100..999,
// obsolete line folding is refused (RFC 9112 5.2 lets a gateway answer 502 instead of unfolding), and a
// header field value is held to the same bytes net/textproto accepts. All strings share one allocation.
func parseHead(raw []byte, h *head) error {
	s := string(raw)
	line, rest := nextLine(s)
	*h = head{length: -1}
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return protoErr("malformed status line %q", clip(line))
	}
	switch proto {
	case "HTTP/1.1":
		h.major, h.minor = 1, 1
	case "HTTP/1.0":
		h.major, h.minor = 1, 0
	default:
		return protoErr("malformed HTTP version in status line %q", clip(line))
	}
	status = strings.TrimLeft(status, " ")
	if len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return protoErr("malformed status code in status line %q", clip(line))
	}
	code := 0
	for i := 0; i < 3; i++ {
		c := status[i]
		if c < '0' || c > '9' {
			return protoErr("malformed status code in status line %q", clip(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return protoErr("status code %d out of range", code)
	}
	h.code = code
	h.status = status
	hdr, err := parseFields(rest)
	if err != nil {
		return err
	}
	h.header = hdr

	// Pragma: no-cache without Cache-Control means Cache-Control: no-cache (RFC 7234), as net/http does.
	if pv, ok := hdr["Pragma"]; ok && len(pv) > 0 && pv[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}
	conn := hdr["Connection"]
	h.close = hasToken(conn, "close")
	if h.close {
		delete(hdr, "Connection") // as net/http does
	} else if h.minor == 0 && !hasToken(conn, "keep-alive") {
		h.close = true
	}

	if te, ok := hdr["Transfer-Encoding"]; ok {
		delete(hdr, "Transfer-Encoding")
		if h.minor > 0 {
			// Like net/http (and nginx): one Transfer-Encoding field, and only chunked.
			if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
				return protoErr("unsupported transfer encoding %q", te)
			}
			h.chunked = true
		}
	}
	if cl, ok := hdr["Content-Length"]; ok {
		if h.chunked {
			// Both: chunked wins (RFC 9112 6.3), and the connection is not trusted for another message.
			delete(hdr, "Content-Length")
			h.close = true
		} else {
			first := strings.TrimSpace(cl[0])
			for _, v := range cl[1:] {
				if strings.TrimSpace(v) != first {
					return protoErr("conflicting Content-Length values %q", cl)
				}
			}
			if len(cl) > 1 {
				hdr["Content-Length"] = cl[:1]
			}
			n, ok := parseLength(first)
			if !ok {
				return protoErr("bad Content-Length %q", clip(first))
			}
			h.length = n
		}
	}
	if tv, ok := hdr["Trailer"]; ok && h.chunked {
		delete(hdr, "Trailer")
		tr := make(http.Header, len(tv))
		for _, v := range tv {
			for _, k := range strings.Split(v, ",") {
				k = strings.TrimSpace(k)
				if k == "" {
					continue
				}
				k = textproto.CanonicalMIMEHeaderKey(k)
				switch k {
				case "Transfer-Encoding", "Trailer", "Content-Length":
					return protoErr("bad trailer key %q", k)
				}
				tr[k] = nil
			}
		}
		if len(tr) > 0 {
			h.trailer = tr
		}
	}
	return nil
}

// parseFields parses header (or trailer) field lines up to the empty line.
func parseFields(s string) (http.Header, error) {
	n := strings.Count(s, "\n")
	hdr := make(http.Header, n)
	vals := make([]string, n) // one backing array for the common single-valued fields
	used := 0
	for {
		var line string
		line, s = nextLine(s)
		if line == "" {
			return hdr, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, protoErr("obsolete line folding in header field %q", clip(line))
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, protoErr("malformed header line %q", clip(line))
		}
		for i := 0; i < len(name); i++ {
			if !tokenByte(name[i]) {
				return nil, protoErr("invalid header field name %q", clip(name))
			}
		}
		value = strings.Trim(value, " \t")
		for i := 0; i < len(value); i++ {
			if !valueByte(value[i]) {
				return nil, protoErr("invalid header field value for %q", name)
			}
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if vv, ok := hdr[name]; ok {
			hdr[name] = append(vv, value)
			continue
		}
		if used < len(vals) {
			vals[used] = value
			hdr[name] = vals[used : used+1 : used+1]
			used++
		} else {
			hdr[name] = []string{value}
		}
	}
}

// parseLength parses a Content-Length value: decimal digits only, no sign.
func parseLength(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// hasToken reports whether a comma-separated list in vv holds token (ASCII case-insensitive).
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// tokenByte reports whether c may appear in a header field name (RFC 9110 tchar).
func tokenByte(c byte) bool {
	return c < 0x80 && tokenTable[c]
}

var tokenTable = func() (t [128]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// valueByte reports whether c may appear in a header field value: VCHAR, SP, HTAB or obs-text.
func valueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}

// hostByte reports whether c may appear in a Host header this transport writes itself (ASCII host,
// IP literal, port); anything else goes to the fallback transport, which knows IDNA and zones.
func hostByte(c byte) bool {
	return c < 0x80 && (tokenTable[c] && c != '%' || c == ':' || c == '[' || c == ']')
}

// errInvalidHeader is a request header this transport refuses to write (CR, LF, NUL or other controls
// in a value, a non-token name): header injection towards the application.
type errInvalidHeader struct{ name string }

func (e *errInvalidHeader) Error() string {
	return fmt.Sprintf("h1: invalid request header field %q", clip(e.name))
}

// excludedRequestHeader are the fields written from Request fields or never sent, as in net/http.
func excludedRequestHeader(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// appendRequestHead appends the request line and header fields of req (with its Content-Length when
// SendsLength says so) to b. Header values are trimmed of surrounding blanks; a name or value that cannot
// be written safely is an error.
func appendRequestHead(b []byte, req *http.Request, host string) ([]byte, error) {
	b = append(b, req.Method...)
	b = append(b, ' ')
	u := len(b)
	b = appendRequestURI(b, req.URL)
	for _, c := range b[u:] {
		if c <= ' ' || c == 0x7f {
			return b, errors.New("h1: control character or space in the request URL")
		}
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	ua := "Go-http-client/1.1"
	if v, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(v) > 0 {
			ua = v[0]
		}
	}
	if ua != "" {
		if !validValue(ua) {
			return b, &errInvalidHeader{"User-Agent"}
		}
		b = append(b, "User-Agent: "...)
		b = append(b, strings.Trim(ua, " \t")...)
		b = append(b, "\r\n"...)
	}
	for k, vv := range req.Header {
		if excludedRequestHeader(k) {
			continue
		}
		var err error
		if b, err = AppendField(b, k, vv); err != nil {
			return b, err
		}
	}
	if SendsLength(req) {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, req.ContentLength, 10)
		b = append(b, "\r\n"...)
	}
	if req.Close {
		b = append(b, "Connection: close\r\n"...)
	}
	return append(b, "\r\n"...), nil
}

func validValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !valueByte(v[i]) {
			return false
		}
	}
	return true
}

// appendRequestURI appends u's request-target (path and query) without building the string.
func appendRequestURI(b []byte, u *url.URL) []byte {
	if u.Opaque != "" {
		return append(b, u.RequestURI()...)
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	} else if p[0] != '/' {
		b = append(b, '/')
	}
	b = append(b, p...)
	if u.ForceQuery || u.RawQuery != "" {
		b = append(b, '?')
		b = append(b, u.RawQuery...)
	}
	return b
}

var errUnexpected101 = errors.New("h1: 101 Switching Protocols to a request that asked for no upgrade")
