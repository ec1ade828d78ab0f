package router

import (
	"net/http"
	"net/url"
	"strings"
)

// StripPrefix returns middleware that removes prefix (cleaned, no trailing slash) from the request path
// before calling next, and tells the application its mount point in X-Forwarded-Prefix. When a trusted
// proxy in front already sent a prefix, the two are joined, outermost first. Path and RawPath are updated
// together, so the escaped form can never disagree with the routed one. The request is shallow-copied; the
// caller's request is not modified.
func StripPrefix(prefix string) func(http.Handler) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return func(next http.Handler) http.Handler {
		if prefix == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rest, ok := strings.CutPrefix(r.URL.Path, prefix)
			if !ok || (rest != "" && rest[0] != '/') {
				// The router only sends matching paths here; anything else is a wiring mistake.
				http.NotFound(w, r)
				return
			}
			if rest == "" {
				rest = "/"
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = rest
			r2.URL.RawPath = stripRaw(r.URL.RawPath, prefix, rest)
			r2.Header.Set(ForwardedPrefixField, strings.TrimSuffix(r.Header.Get(ForwardedPrefixField), "/")+prefix)
			next.ServeHTTP(w, r2)
		})
	}
}

// ForwardedPrefixField is the field StripPrefix tells the app its mount point in.
const ForwardedPrefixField = "X-Forwarded-Prefix"

// stripRaw removes prefix from an escaped path whose decoded form starts with it, keeping the escapes of
// the rest (an encoded slash a route forwards, see Route.EncodedSlash); "" when there is no escaped form
// or it does not decode to prefix+rest.
func stripRaw(raw, prefix, rest string) string {
	if raw == "" {
		return ""
	}
	// The prefix has as many real separators in raw as in its decoded form: "%2F" is never one.
	i, n := 0, strings.Count(prefix, "/")
	for ; i < len(raw) && n > 0; i++ {
		if raw[i] == '/' {
			n--
		}
	}
	for i < len(raw) && raw[i] != '/' {
		i++
	}
	out := raw[i:]
	if out == "" {
		out = "/"
	}
	if p, err := url.PathUnescape(out); err != nil || p != rest {
		return ""
	}
	return out
}
