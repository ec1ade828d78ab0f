package scgi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/adapters/cgienv"
	"github.com/switchyard/switchyard/adapters/cgiwire"
)

// ErrMalformedRequest is wrapped by every ReadRequest, ReadNetstring and DecodeHeaders error caused by the
// bytes themselves.
var ErrMalformedRequest = errors.New("scgi: malformed request header")

// maxLengthDigits bounds the netstring length prefix: 9 digits is under 1 GB, far beyond any header block.
const maxLengthDigits = 9

// AppendRequest appends the SCGI request header for vars to dst: the netstring
// "<len>:CONTENT_LENGTH\0<n>\0SCGI\01\0name\0value\0...," that precedes the body. CONTENT_LENGTH comes first
// as the protocol requires ("0" when vars has none) and SCGI=1 second; any other CONTENT_LENGTH or SCGI
// entries in vars are dropped. A NUL byte in a name or value, or an empty name, cannot be framed: the error
// comes from cgiwire.BadVars and dst is returned unchanged, as does a CONTENT_LENGTH that is not decimal.
func AppendRequest(dst []byte, vars []cgienv.Param) ([]byte, error) {
	cl := "0"
	for _, v := range vars {
		if v.Name == "CONTENT_LENGTH" && v.Value != "" {
			cl = v.Value
		}
	}
	if !decimal(cl) {
		return dst, cgiwire.BadVars(fmt.Sprintf("scgi: CONTENT_LENGTH %q is not a decimal length", clip(cl)))
	}
	size := len("CONTENT_LENGTH") + len(cl) + len("SCGI") + len("1") + 4
	for _, v := range vars {
		if v.Name == "CONTENT_LENGTH" || v.Name == "SCGI" {
			continue
		}
		if v.Name == "" {
			return dst, cgiwire.BadVars("scgi: empty variable name")
		}
		if strings.IndexByte(v.Name, 0) >= 0 || strings.IndexByte(v.Value, 0) >= 0 {
			return dst, cgiwire.BadVars(fmt.Sprintf("scgi: variable %q contains a NUL byte", clip(v.Name)))
		}
		size += len(v.Name) + len(v.Value) + 2
	}
	dst = strconv.AppendInt(dst, int64(size), 10)
	dst = append(dst, ':')
	pair := func(n, v string) {
		dst = append(dst, n...)
		dst = append(dst, 0)
		dst = append(dst, v...)
		dst = append(dst, 0)
	}
	pair("CONTENT_LENGTH", cl)
	pair("SCGI", "1")
	for _, v := range vars {
		if v.Name != "CONTENT_LENGTH" && v.Name != "SCGI" {
			pair(v.Name, v.Value)
		}
	}
	return append(dst, ','), nil
}

// ReadNetstring reads one netstring ("<len>:<payload>,") from br and returns the payload. The length has no
// leading zeros and may not exceed max, so garbage cannot make it allocate more than max bytes.
func ReadNetstring(br *bufio.Reader, max int) ([]byte, error) {
	n := 0
	digits := 0
	for {
		c, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: reading the length: %v", ErrMalformedRequest, err)
		}
		if c == ':' {
			break
		}
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("%w: %q in the length", ErrMalformedRequest, c)
		}
		if digits == 1 && n == 0 {
			return nil, fmt.Errorf("%w: length with a leading zero", ErrMalformedRequest)
		}
		digits++
		if digits > maxLengthDigits {
			return nil, fmt.Errorf("%w: length has more than %d digits", ErrMalformedRequest, maxLengthDigits)
		}
		n = n*10 + int(c-'0')
	}
	if digits == 0 {
		return nil, fmt.Errorf("%w: empty length", ErrMalformedRequest)
	}
	if n > max {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrMalformedRequest, n, max)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return nil, fmt.Errorf("%w: reading %d bytes: %v", ErrMalformedRequest, n, err)
	}
	if c, err := br.ReadByte(); err != nil || c != ',' {
		return nil, fmt.Errorf("%w: netstring not terminated by ','", ErrMalformedRequest)
	}
	return payload, nil
}

// DecodeHeaders splits a netstring payload into its NUL-terminated name/value pairs. Names must be
// non-empty and unique; the payload must end with the last value's NUL.
func DecodeHeaders(payload []byte) ([]cgienv.Param, error) {
	var out []cgienv.Param
	seen := map[string]bool{}
	for off := 0; off < len(payload); {
		i := bytes.IndexByte(payload[off:], 0)
		if i < 0 {
			return nil, fmt.Errorf("%w: name at offset %d not NUL-terminated", ErrMalformedRequest, off)
		}
		name := string(payload[off : off+i])
		off += i + 1
		j := bytes.IndexByte(payload[off:], 0)
		if j < 0 {
			return nil, fmt.Errorf("%w: value of %q not NUL-terminated", ErrMalformedRequest, clip(name))
		}
		value := string(payload[off : off+j])
		off += j + 1
		if name == "" {
			return nil, fmt.Errorf("%w: empty name", ErrMalformedRequest)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: %q given twice", ErrMalformedRequest, clip(name))
		}
		seen[name] = true
		out = append(out, cgienv.Param{Name: name, Value: value})
	}
	return out, nil
}

// ReadRequest reads an SCGI request header as a server would (the payload at most max bytes) and checks
// the protocol's rules: CONTENT_LENGTH first with a decimal value, and SCGI=1. br is left at the body.
func ReadRequest(br *bufio.Reader, max int) ([]cgienv.Param, error) {
	payload, err := ReadNetstring(br, max)
	if err != nil {
		return nil, err
	}
	vars, err := DecodeHeaders(payload)
	if err != nil {
		return nil, err
	}
	if len(vars) == 0 || vars[0].Name != "CONTENT_LENGTH" {
		return nil, fmt.Errorf("%w: CONTENT_LENGTH is not the first header", ErrMalformedRequest)
	}
	if _, err := strconv.ParseUint(vars[0].Value, 10, 63); err != nil {
		return nil, fmt.Errorf("%w: CONTENT_LENGTH %q is not a decimal length", ErrMalformedRequest, clip(vars[0].Value))
	}
	for _, v := range vars {
		if v.Name == "SCGI" {
			if v.Value != "1" {
				return nil, fmt.Errorf("%w: SCGI=%q, want 1", ErrMalformedRequest, clip(v.Value))
			}
			return vars, nil
		}
	}
	return nil, fmt.Errorf("%w: no SCGI header", ErrMalformedRequest)
}

func decimal(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
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
