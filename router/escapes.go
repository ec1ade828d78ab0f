package router

import (
	"net/http"
	"net/url"
	"strings"
)

// refusedEscape reports whether the percent-encoding of byte c is refused in a request path by the front
// door: '.' (an encoded dot segment is invisible to routing but resolved by apps that decode first), '/'
// (an encoded separator: the route sees one segment, an app that decodes sees two; see encodedSlash for
// the routes that take it), '\\' (a separator to Windows-minded servers and some frameworks), and every
// control character (NUL truncation, CR/LF injection into CGI variables and logs). '%' itself is
// refused only when it starts another escape after decoding (double encoding); CleanPath catches that on
// the decoded path.
//
// docs/paths.md lists exactly these; TestDocumentedRefusedEncodingsAreWhatTheCodeRefuses holds the two
// together.
func refusedEscape(c byte) bool {
	return c == '.' || c == '/' || c == '\\' || c < 0x20 || c == 0x7f
}

// requestPath returns the path of r as the client escaped it: the path of the request-target
// (r.RequestURI), which net/http keeps verbatim. r.URL.RawPath cannot stand in for it: net/http sets it
// only when the escaping differs from Go's default one, so "%2561" or "%5C" leave it empty. When r did
// not come from a server, or its URL was changed since, the escaped form of r.URL is used instead.
func requestPath(r *http.Request) string {
	raw := r.RequestURI
	if raw != "" && raw[0] != '/' {
		// absolute-form ("http://host/path?q"), authority-form or "*": the path starts after the authority
		if i := strings.Index(raw, "://"); i > 0 {
			raw = raw[i+3:]
			if j := strings.IndexAny(raw, "/?"); j >= 0 && raw[j] == '/' {
				raw = raw[j:]
			} else {
				raw = ""
			}
		} else {
			raw = ""
		}
	}
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		raw = raw[:i]
	}
	if raw == "" {
		return r.URL.EscapedPath()
	}
	if strings.IndexByte(raw, '%') < 0 {
		if raw == r.URL.Path {
			return raw // the common case: nothing escaped, nothing to allocate
		}
	} else if p, err := url.PathUnescape(raw); err == nil && p == r.URL.Path {
		return raw
	}
	return r.URL.EscapedPath()
}

// checkEscapes scans an escaped request path for refused encodings (refusedEscape). With keepSlash, an
// encoded '/' is let through and reported instead (for routes with EncodedSlash, which the Table checks).
func checkEscapes(raw string, keepSlash bool) (encodedSlash bool, err error) {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			continue
		}
		if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
			return false, ErrBadPath
		}
		c := unhex(raw[i+1])<<4 | unhex(raw[i+2])
		if c == '/' && keepSlash {
			encodedSlash = true
		} else if refusedEscape(c) {
			return false, ErrBadPath
		}
		i += 2
	}
	return encodedSlash, nil
}

// isEncodedSlash reports whether s starts with "%2F" or "%2f".
func isEncodedSlash(s string) bool {
	return len(s) >= 3 && s[0] == '%' && s[1] == '2' && (s[2] == 'F' || s[2] == 'f')
}

// hasEncodedSlash reports whether an escaped path holds "%2F" (either case).
func hasEncodedSlash(raw string) bool {
	for i := strings.IndexByte(raw, '%'); i >= 0 && i < len(raw); i++ {
		if isEncodedSlash(raw[i:]) {
			return true
		}
	}
	return false
}

// splitEncodedSlash splits an escaped path at its "%2F"s.
func splitEncodedSlash(raw string) []string {
	var out []string
	start := 0
	for i := 0; i < len(raw); i++ {
		if isEncodedSlash(raw[i:]) {
			out = append(out, raw[start:i])
			start = i + 3
			i += 2
		}
	}
	return append(out, raw[start:])
}

// slashForms returns, for an escaped path holding "%2F", the routing form (decoded, but with every encoded
// slash kept as the three characters "%2F", an ordinary character of its segment) and the canonical
// escaped form to forward (each piece escaped as Go escapes paths, joined with "%2F"), such that the
// decoded path is the escaped form unescaped.
func slashForms(raw string) (routing, escaped string, err error) {
	pieces := splitEncodedSlash(raw)
	dec := make([]string, len(pieces))
	esc := make([]string, len(pieces))
	for i, p := range pieces {
		if dec[i], err = url.PathUnescape(p); err != nil {
			return "", "", ErrBadPath
		}
		esc[i] = (&url.URL{Path: dec[i]}).EscapedPath()
	}
	return strings.Join(dec, "%2F"), strings.Join(esc, "%2F"), nil
}

// stripParams removes ";parameters" from every segment of a clean path, the way servlet containers
// (Tomcat, Jetty) and Spring read "/admin;x=1/secret" as "/admin/secret".
func stripParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == ';' {
			for i < len(p) && p[i] != '/' {
				i++
			}
			if i == len(p) {
				break
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
