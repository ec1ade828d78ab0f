package router

import (
	"fmt"
	"strings"
)

// Pattern is a parsed route pattern: an optional host (exact, or "*.example.com" for any subdomain) and a
// path prefix.
type Pattern struct {
	// Host is "" (any host), an exact lowercase host without port, or "*.suffix".
	Host string
	// Prefix is "/" or a cleaned path without trailing slash ("/api"). It matches itself and everything
	// below prefix+"/", never "/apix".
	Prefix string
}

// String prints the pattern in its canonical configuration form ("admin.example.com/api/").
func (p Pattern) String() string {
	if p.Prefix == "/" {
		return p.Host + "/"
	}
	return p.Host + p.Prefix + "/"
}

// ParsePattern reads "/api/", "/api", "admin.example.com/", "admin.example.com" or "*.example.com/api/".
// Host matching is case-insensitive and ignores port and trailing dot. Patterns may not contain chi's
// wildcard or parameter syntax, dot segments or characters CleanPath would refuse, so that a pattern
// always names a path a request can actually have.
func ParsePattern(s string) (Pattern, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Pattern{}, fmt.Errorf("empty route pattern: expected a path prefix such as /api/ or a host such as admin.example.com/")
	}
	var p Pattern
	path := s
	if s[0] != '/' {
		host := s
		if i := strings.IndexByte(s, '/'); i >= 0 {
			host, path = s[:i], s[i:]
		} else {
			path = "/"
		}
		wild := strings.HasPrefix(host, "*.")
		h, err := CanonicalHost(strings.TrimPrefix(host, "*."))
		if err != nil || h == "" || strings.ContainsAny(h, "*[]:_") || !validLabels(h) {
			return Pattern{}, fmt.Errorf("route pattern %q: host %q is not a host name (expected example.com or *.example.com)", s, host)
		}
		if wild {
			h = "*." + h
		}
		p.Host = h
	}
	if strings.ContainsAny(path, "{}*?#%\\") {
		return Pattern{}, fmt.Errorf("route pattern %q: path %q may not contain { } * ? # %% or \\ (patterns are literal prefixes)", s, path)
	}
	clean, err := CleanPath(path)
	if err != nil || strings.TrimSuffix(clean, "/") != strings.TrimSuffix(path, "/") {
		return Pattern{}, fmt.Errorf("route pattern %q: path %q is not clean (no dot segments, no //)", s, path)
	}
	p.Prefix = strings.TrimSuffix(clean, "/")
	if p.Prefix == "" {
		p.Prefix = "/"
	}
	return p, nil
}

// matchHost reports whether host h (validated by splitHost: ASCII, no port, no trailing dot, any case)
// matches pattern host ph (lowercase). It never allocates.
func matchHost(ph, h string) bool {
	if ph == "" {
		return true
	}
	if strings.HasPrefix(ph, "*.") {
		suffix := ph[1:]
		return len(h) > len(suffix) && strings.EqualFold(h[len(h)-len(suffix):], suffix)
	}
	return strings.EqualFold(ph, h)
}

// validLabels reports whether every dot-separated label of a host name is 1 to 63 characters, so that
// patterns such as ".." or "a..b" (which no request Host can have) are refused.
func validLabels(h string) bool {
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
	}
	return true
}
