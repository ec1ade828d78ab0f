package router

import (
	"github.com/switchyard/switchyard/internal/cleanpath"
)

// ErrBadPath is returned by CleanPath for a path no route may see.
var ErrBadPath = cleanpath.ErrBadPath

// CleanPath canonicalises a request path (already percent-decoded once, as net/http does) before routing,
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
// The result always starts with "/". It is internal/cleanpath's Clean, which the rewrite middleware calls
// without depending on the router.
func CleanPath(p string) (string, error) { return cleanpath.Clean(p) }

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
