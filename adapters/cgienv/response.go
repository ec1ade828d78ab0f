package cgienv

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
)

// DefaultMaxResponseHeaderBytes is the limit ReadResponseHeader applies to the header block of a CGI-style
// response when its caller passes none (the gateway's GATEWAY_MAX_RESPONSE_HEADER_SIZE default), so an app
// printing an endless header cannot make the gateway buffer without limit.
const DefaultMaxResponseHeaderBytes = 256 << 10

// ErrMalformedResponse is wrapped by every ReadResponseHeader error caused by the app's output itself.
var ErrMalformedResponse = errors.New("malformed CGI response")

// ResponseHeader is the parsed head of a CGI-style response (RFC 3875 section 6): the status and the header
// fields, with Status removed. The body follows in the reader.
type ResponseHeader struct {
	Status int
	Header http.Header
}

// ReadResponseHeader reads a CGI response head from br: header lines up to the first empty line. A "Status"
// field sets the status ("404 Not Found" or "404"); a Location without Status means 302, as servers do for a
// client redirect; otherwise 200. Lines may end with "\r\n" or "\n". The head, its final empty line
// included, may not exceed limit bytes (limit <= 0: DefaultMaxResponseHeaderBytes); a larger one fails with
// ErrMalformedResponse once limit bytes were read, so at most limit bytes (plus br's buffer) are ever held.
// The reader is left at the first body byte.
func ReadResponseHeader(br *bufio.Reader, limit int64) (*ResponseHeader, error) {
	if limit <= 0 {
		limit = DefaultMaxResponseHeaderBytes
	}
	lr := &limitedLineReader{br: br, limit: limit, left: limit}
	h := http.Header{}
	for {
		line, err := lr.readLine()
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, fmt.Errorf("%w: folded header line %q", ErrMalformedResponse, clip(line))
		}
		i := strings.IndexByte(line, ':')
		if i <= 0 {
			return nil, fmt.Errorf("%w: header line without a colon: %q", ErrMalformedResponse, clip(line))
		}
		name := strings.TrimSpace(line[:i])
		if !validFieldName(name) {
			return nil, fmt.Errorf("%w: invalid header name %q", ErrMalformedResponse, clip(name))
		}
		value := strings.TrimSpace(line[i+1:])
		if !validFieldValue(value) {
			return nil, fmt.Errorf("%w: invalid value for header %q", ErrMalformedResponse, name)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(name), value)
	}
	status := http.StatusOK
	if s := h.Get("Status"); s != "" {
		code := s
		if i := strings.IndexByte(s, ' '); i >= 0 {
			code = s[:i]
		}
		n, err := strconv.Atoi(code)
		if err != nil || len(code) != 3 || n < 100 || n > 999 {
			return nil, fmt.Errorf("%w: invalid Status %q", ErrMalformedResponse, clip(s))
		}
		status = n
		h.Del("Status")
	} else if h.Get("Location") != "" {
		status = http.StatusFound
	}
	return &ResponseHeader{Status: status, Header: h}, nil
}

type limitedLineReader struct {
	br          *bufio.Reader
	limit, left int64
}

func (l *limitedLineReader) readLine() (string, error) {
	var sb strings.Builder
	for {
		frag, err := l.br.ReadSlice('\n')
		l.left -= int64(len(frag))
		if l.left < 0 {
			return "", fmt.Errorf("%w: header block larger than %d bytes", ErrMalformedResponse, l.limit)
		}
		sb.Write(frag)
		if err == nil {
			break
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if sb.Len() == 0 {
			return "", fmt.Errorf("%w: response ended before the header block (%w)", ErrMalformedResponse, err)
		}
		return "", fmt.Errorf("%w: response ended inside the header block (%w)", ErrMalformedResponse, err)
	}
	s := sb.String()
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	return s, nil
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
