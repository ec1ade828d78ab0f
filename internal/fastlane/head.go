package fastlane

import (
	"bytes"
	"unsafe"

	"golang.org/x/net/http/httpguts"

	"github.com/switchyard/switchyard/router"
)

// MaxFields is the most header fields a head the lane takes may carry; a head with more is not the lane's.
const MaxFields = 48

// Field is one header field of a parsed head: the name as sent and the value without its surrounding
// spaces and tabs. Both alias the buffer the head was parsed from.
type Field struct{ Name, Value []byte }

// Head is a request head Parse proved to be the lane's. Every slice aliases the parsed buffer: a Head is
// valid only as long as the buffer is not reused. Only Fields[:NFields] are the head's: Parse leaves the
// rest of the array as it was (kilobytes it need not clear).
type Head struct {
	headLine
	Fields [MaxFields]Field
}

// headLine is what Parse sets of a Head besides its fields, all of it for each head.
type headLine struct {
	Method []byte
	Target []byte // the request-target as sent (origin-form: path, then "?" and the query, if any)
	Path   []byte // Target up to '?': no escapes, so it is also the decoded path
	Query  []byte // after '?' (nil without one; empty after a bare '?')
	Minor  int    // 0 for HTTP/1.0, 1 for HTTP/1.1
	Host   []byte // the one Host field's value
	// ContentLength is the declared body length (0 without a Content-Length field).
	ContentLength int64
	// Close is net/http's Request.Close for the head: Connection: close, or HTTP/1.0 without keep-alive.
	Close bool
	// KeepAlive10 says an HTTP/1.0 request asked for keep-alive (Connection: keep-alive).
	KeepAlive10 bool
	NFields     int
	// Size is the head's length in the buffer, its final empty line included: the body starts there.
	Size int
}

// Verdict is Parse's answer.
type Verdict int

const (
	// NotMine: the buffer starts with something the lane does not take; net/http gets the connection.
	NotMine Verdict = iota
	// Incomplete: what is there so far could be the lane's, but the head has not ended yet.
	Incomplete
	// Mine: the head is the lane's, parsed into the Head.
	Mine
)

// Limits bound what Parse accepts.
type Limits struct {
	// MaxHead is the longest head taken (bytes, the final empty line included); a longer one, or a buffer
	// this full without the head's end, is not the lane's (net/http answers 431 by its own limit).
	MaxHead int
	// MaxBody is the longest declared body taken.
	MaxBody int64
}

// Parse decides whether buf starts with a request head the lane takes, and parses it into h without
// allocating. It takes only the strict subset the package comment lists; anything else, however valid,
// is NotMine. It never reads past the head.
func Parse(buf []byte, h *Head, lim Limits) Verdict {
	end := bytes.Index(buf, crlfcrlf)
	if end < 0 {
		if len(buf) >= lim.MaxHead || !plausibleSoFar(buf) {
			return NotMine
		}
		return Incomplete
	}
	size := end + len(crlfcrlf)
	if size > lim.MaxHead {
		return NotMine
	}
	h.headLine = headLine{Size: size}
	head := buf[:end+2] // every line with its CRLF
	// The request line.
	line, rest, ok := cutLine(head)
	if !ok {
		return NotMine
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !allToken(line[:sp]) {
		return NotMine
	}
	h.Method = line[:sp]
	if string(h.Method) == "CONNECT" {
		return NotMine
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return NotMine
	}
	h.Target, line = line[:sp], line[sp+1:]
	switch string(line) {
	case "HTTP/1.1":
		h.Minor = 1
	case "HTTP/1.0":
		h.Minor = 0
	default:
		return NotMine
	}
	if !h.splitTarget() {
		return NotMine
	}
	// The fields.
	hosts, lengths, conns := 0, 0, 0
	for len(rest) > 0 {
		line, rest, ok = cutLine(rest)
		if !ok || h.NFields == MaxFields {
			return NotMine
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return NotMine // also a line starting with SP or HTAB (obsolete folding): no token before it
		}
		name := line[:colon]
		if !allToken(name) || bytes.IndexByte(name, '_') >= 0 {
			return NotMine
		}
		value := trimOWS(line[colon+1:])
		for _, c := range value {
			if !valueByte(c) {
				return NotMine
			}
		}
		switch {
		case foldEq(name, "host"):
			hosts++
			if !validHost(value) {
				return NotMine
			}
			h.Host = value
		case foldEq(name, "content-length"):
			lengths++
			n, ok := decimal(value)
			if !ok || n > lim.MaxBody {
				return NotMine
			}
			h.ContentLength = n
		case foldEq(name, "connection"):
			conns++
			switch {
			case foldEq(value, "close"):
				h.Close = true
			case foldEq(value, "keep-alive"):
				h.KeepAlive10 = h.Minor == 0
			default:
				return NotMine
			}
		case foldEq(name, "transfer-encoding"), foldEq(name, "upgrade"), foldEq(name, "expect"),
			foldEq(name, "trailer"), foldEq(name, "proxy"), foldEq(name, "http2-settings"):
			return NotMine
		}
		h.Fields[h.NFields] = Field{Name: name, Value: value}
		h.NFields++
	}
	if hosts != 1 || lengths > 1 || conns > 1 {
		return NotMine
	}
	if h.Minor == 0 && !h.KeepAlive10 {
		h.Close = true
	}
	return Mine
}

var crlfcrlf = []byte("\r\n\r\n")

// cutLine splits off the first CRLF-ended line of b; a lone CR or LF in it makes it not the lane's.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// plausibleSoFar reports whether an unfinished head may still become the lane's: it starts with a token
// character (not a blank line net/http would skip) and holds no bare LF.
func plausibleSoFar(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	if !tokenByte(b[0]) {
		return false
	}
	for i := bytes.IndexByte(b, '\n'); i >= 0; {
		if i == 0 || b[i-1] != '\r' {
			return false
		}
		j := bytes.IndexByte(b[i+1:], '\n')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return true
}

// splitTarget checks the origin-form target and splits it into path and query. The path holds only
// characters Go's URL escaping leaves alone (so net/http's URL.Path is the target's path and RawPath is
// empty): unreserved, "$&+,/:=@". No '%' (an escape is for the front door to judge), no ';' (path
// parameters are for the route table to judge), and it must be one router.CleanPath returns unchanged (no
// empty or dot segments): the path the front door routes on is then the one sent. The query may also hold
// "?!'()*" and valid %XX escapes (no ';': the direct path hands such queries to ReverseProxy, which
// rewrites them).
func (h *Head) splitTarget() bool {
	t := h.Target
	if len(t) == 0 || t[0] != '/' {
		return false
	}
	path := t
	if q := bytes.IndexByte(t, '?'); q >= 0 {
		path, h.Query = t[:q], t[q+1:]
	}
	for _, c := range path {
		if !pathByte(c) {
			return false
		}
	}
	q := h.Query
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c == '%':
			if i+2 >= len(q) || !hexByte(q[i+1]) || !hexByte(q[i+2]) {
				return false
			}
			i += 2
		case pathByte(c), c == '?', c == '!', c == '\'', c == '(', c == ')', c == '*':
		default:
			return false
		}
	}
	p := unsafe.String(unsafe.SliceData(path), len(path)) // only for the call: CleanPath keeps no reference
	if clean, err := router.CleanPath(p); err != nil || clean != p {
		return false
	}
	h.Path = path
	return true
}

// validHost accepts a registered name or IPv4 address with an optional port: letters, digits, '-' and '.',
// then ':' and up to five digits; and only what router.CanonicalHost (the front door's check) accepts.
// IPv6 literals and '_' are left to net/http.
func validHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	name := v
	if i := bytes.IndexByte(v, ':'); i >= 0 {
		name = v[:i]
		port := v[i+1:]
		if len(port) > 5 {
			return false
		}
		for _, c := range port {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	_, err := router.CanonicalHost(unsafe.String(unsafe.SliceData(v), len(v)))
	return err == nil
}

// decimal parses 1 to 18 ASCII digits.
func decimal(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(v []byte) []byte {
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	return v
}

// foldEq reports whether b equals lower (lowercase ASCII) ignoring ASCII case.
func foldEq(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func allToken(b []byte) bool {
	for _, c := range b {
		if !tokenByte(c) {
			return false
		}
	}
	return len(b) > 0
}

// tokenByte reports whether c is a tchar (RFC 9110 section 5.6.2): httpguts's table, which net/http checks
// field names with.
func tokenByte(c byte) bool { return httpguts.IsTokenRune(rune(c)) }

// valueByte reports whether c may appear in a field value the lane takes: visible ASCII, SP or HTAB.
func valueByte(c byte) bool { return c == ' ' || c == '\t' || 0x21 <= c && c <= 0x7e }

// pathByte reports whether c may appear in the path of a target the lane takes.
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', '$', '&', '+', ',', '/', ':', '=', '@':
		return true
	}
	return false
}

func hexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
