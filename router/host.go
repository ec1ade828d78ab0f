package router

import (
	"errors"
	"strings"
)

// ErrBadHost is returned by CanonicalHost for a Host header that is not a valid host[:port].
var ErrBadHost = errors.New("bad Host header")

// CanonicalHost lowercases host, drops the port and one trailing dot, and refuses characters that cannot
// appear in a host name or IP literal. "" stays "" (HTTP/1.0 requests may carry no Host).
func CanonicalHost(host string) (string, error) {
	if host == "" {
		return "", nil
	}
	h := host
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", ErrBadHost
		}
		rest := h[end+1:]
		if rest != "" && (rest[0] != ':' || !allDigits(rest[1:])) {
			return "", ErrBadHost
		}
		h = h[:end+1]
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if !allDigits(h[i+1:]) {
			return "", ErrBadHost
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", ErrBadHost
	}
	b := []byte(h)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		case c == ':' || c == '[' || c == ']':
			if h[0] != '[' {
				return "", ErrBadHost
			}
		default:
			return "", ErrBadHost
		}
	}
	return string(b), nil
}

func allDigits(s string) bool {
	if len(s) > 5 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
