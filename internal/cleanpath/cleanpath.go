// Package cleanpath owns the canonical form of a request path: the one the router matches and the
// application receives. It is apart from package router so that what only needs the cleaning (the rewrite
// middleware, and through it the configuration) does not depend on the router; router.CleanPath is this.
package cleanpath

import (
	"errors"
)

// ErrBadPath is returned by Clean for a path no route may see.
var ErrBadPath = errors.New("bad request path")

// Clean canonicalises a request path (already percent-decoded once, as net/http does) before routing,
// so that what the router matches is exactly what the application receives:
//
//   - a backslash becomes "/" (some servers and frameworks treat "\" as a separator: "/public\..\admin");
//   - "." and ".." segments are resolved and runs of "/" collapsed ("/api/../admin", "//admin"); ".." never
//     climbs above the root;
//   - a trailing slash is kept ("/api/" stays distinct from "/api" for the app);
//   - NUL and other control characters are refused (truncation tricks such as "evil.jpg%00.php");
//   - a path that still holds a percent-encoding after the one decoding ("%61dmin" from "%2561dmin",
//     "%2f" from "%252f", "%2F" from "%25%32%46") is refused: that is double encoding, and an
//     application that decodes again would read another path ("/admin") than the one routed.
//
// The result always starts with "/".
func Clean(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' && p[0] != '\\' {
		return "", ErrBadPath
	}
	// One pass to refuse what must be refused and to see whether anything needs cleaning: an already
	// clean path, the common case, is returned as it is, without allocating.
	needs := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", ErrBadPath
		case c == '%':
			if i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
				return "", ErrBadPath
			}
		case c == '\\':
			needs = true
		case c == '/':
			if i+1 < len(p) && (p[i+1] == '/' || dotSegmentAt(p, i+1)) {
				needs = true
			}
		}
	}
	if !needs {
		return p, nil
	}
	return cleanSlow(p), nil
}

// isSep reports whether c separates segments ("\\" counts as "/").
func isSep(c byte) bool { return c == '/' || c == '\\' }

// dotSegmentAt reports whether the segment starting at p[i] is "." or "..".
func dotSegmentAt(p string, i int) bool {
	if i >= len(p) || p[i] != '.' {
		return false
	}
	i++
	if i < len(p) && p[i] == '.' {
		i++
	}
	return i == len(p) || isSep(p[i])
}

// cleanSlow resolves dot segments, collapses separator runs and turns "\\" into "/", in one pass over p
// into one buffer: the result string is the only allocation.
func cleanSlow(p string) string {
	// A dot segment or an empty one at the end keeps the slash ("/a/b/.." is "/a/"), as the trailing slash
	// of "/a/" is kept.
	trailing := isSep(p[len(p)-1])
	if !trailing {
		k := len(p) - 1
		for k >= 0 && !isSep(p[k]) {
			k--
		}
		trailing = dotSegmentAt(p, k+1)
	}
	var stack [256]byte
	out := stack[:0]
	if len(p)+1 > len(stack) {
		out = make([]byte, 0, len(p)+1)
	}
	out = append(out, '/') // out is "/" or "/seg/.../seg", never with a trailing slash while building
	for i := 0; i < len(p); {
		for i < len(p) && isSep(p[i]) {
			i++
		}
		j := i
		for j < len(p) && !isSep(p[j]) {
			j++
		}
		switch seg := p[i:j]; seg {
		case "", ".":
		case "..":
			// Drop the last segment; ".." never climbs above the root.
			k := len(out) - 1
			for k > 0 && out[k] != '/' {
				k--
			}
			out = out[:max(k, 1)]
		default:
			if len(out) > 1 {
				out = append(out, '/')
			}
			out = append(out, seg...)
		}
		i = j
	}
	if trailing && len(out) > 1 {
		out = append(out, '/')
	}
	return string(out)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
