package router

import (
	"errors"
	"strings"
)

// ErrBadHost is returned by CanonicalHost for a Host header that is not a valid host[:port].
var ErrBadHost = errors.New("bad Host header")

// CanonicalHost lowercases host, drops the port and one trailing dot, and refuses characters that cannot
// appear in a host name or IP literal. "" stays "" (HTTP/1.0 requests may carry no Host). A host that is
// already lowercase is returned as a substring of host, without allocating.
func CanonicalHost(host string) (string, error) {
	h, upper, err := splitHost(host)
	if err != nil || !upper {
		return h, err
	}
	b := []byte(h)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b), nil
}

// splitHost validates host as CanonicalHost does and returns it without port and trailing dot, not yet
// lowercased; upper reports whether it has uppercase letters. It never allocates.
func splitHost(host string) (h string, upper bool, err error) {
	if host == "" {
		return "", false, nil
	}
	h = host
	if h[0] == '[' {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return "", false, ErrBadHost
		}
		rest := h[end+1:]
		if rest != "" && (rest[0] != ':' || !allDigits(rest[1:])) {
			return "", false, ErrBadHost
		}
		h = h[:end+1]
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 {
		if !allDigits(h[i+1:]) {
			return "", false, ErrBadHost
		}
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "", false, ErrBadHost
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		case c == ':' || c == '[' || c == ']':
			if h[0] != '[' {
				return "", false, ErrBadHost
			}
		default:
			return "", false, ErrBadHost
		}
	}
	return h, upper, nil
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
