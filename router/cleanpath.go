package router

import (
	"errors"
	"strings"
)

// ErrBadPath is returned by CleanPath for a path no route may see.
var ErrBadPath = errors.New("bad request path")

// CleanPath canonicalises a request path (already percent-decoded once, as net/http does) before routing,
// so that what the router matches is exactly what the application receives:
//
//   - a backslash becomes "/" (some servers and frameworks treat "\" as a separator: "/public\..\admin");
//   - "." and ".." segments are resolved and runs of "/" collapsed ("/api/../admin", "//admin"); ".." never
//     climbs above the root;
//   - a trailing slash is kept ("/api/" stays distinct from "/api" for the app);
//   - NUL and other control characters are refused (truncation tricks such as "evil.jpg%00.php");
//   - a path that still holds an encoded dot, slash, backslash, percent or NUL after the one decoding
//     ("%252e%252e", "%2f") is refused: an application that decodes again would otherwise reach a
//     route the table did not give it.
//
// The result always starts with "/".
func CleanPath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' && p[0] != '\\' {
		return "", ErrBadPath
	}
	needs := false
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", ErrBadPath
		case c == '%':
			if i+2 < len(p) && hasEncodedSeparator(p[i+1], p[i+2]) {
				return "", ErrBadPath
			}
		case c == '\\':
			needs = true
		case c == '/':
			if i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.') {
				needs = true
			}
		}
	}
	if !needs {
		return p, nil
	}
	p = strings.ReplaceAll(p, "\\", "/")
	trailing := strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for _, s := range segs {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	res := "/" + strings.Join(out, "/")
	if trailing && res != "/" {
		res += "/"
	}
	return res, nil
}

// hasEncodedSeparator reports whether "%XY" encodes '.', '/', '\\', '%' or NUL.
func hasEncodedSeparator(x, y byte) bool {
	switch x {
	case '0':
		return y == '0'
	case '2':
		return y == 'e' || y == 'E' || y == 'f' || y == 'F' || y == '5'
	case '5':
		return y == 'c' || y == 'C'
	}
	return false
}

// hasEncodedSeparators reports whether an escaped path encodes '.', '/', '\\', '%' or NUL: net/http decodes
// them into Path, where "/api%2F..%2Fadmin" would turn into dot segments the client never sent as such.
func hasEncodedSeparators(escaped string) bool {
	for i := 0; i+2 < len(escaped); i++ {
		if escaped[i] == '%' && hasEncodedSeparator(escaped[i+1], escaped[i+2]) {
			return true
		}
	}
	return false
}
