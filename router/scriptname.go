package router

import (
	"net/http"
	"strings"
)

// ScriptNameHeader returns middleware that announces prefix (cleaned, no trailing slash) to a WSGI server
// in the SCRIPT_NAME request header, the form gunicorn reads: it makes that value the WSGI SCRIPT_NAME and
// takes it off the front of the path for PATH_INFO, so a stock Django or Flask app builds every URL under
// prefix without a line changed. The path is left whole (gunicorn needs the prefix in it), so this is never
// combined with StripPrefix.
//
// Whatever mount-point header arrived with the request is removed first, in every spelling: SCRIPT_NAME,
// Script-Name, X-Script-Name (the front door already drops names with '_' and, from untrusted peers, the
// hyphenated ones; a trusted proxy's copy is dropped here), so the app sees the gateway's value only, never
// one that would make it route under a prefix the client chose (gunicorn 20 believed any SCRIPT_NAME header:
// benoitc/gunicorn#2650). The request is shallow-copied; the caller's is not modified.
func ScriptNameHeader(prefix string) func(http.Handler) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return func(next http.Handler) http.Handler {
		if prefix == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r2 := r.Clone(r.Context())
			for k := range r2.Header {
				if isMountHeader(k) {
					delete(r2.Header, k)
				}
			}
			r2.Header[ScriptNameField] = []string{prefix}
			next.ServeHTTP(w, r2)
		})
	}
}

// ScriptNameField is the SCRIPT_NAME field as ScriptNameHeader sends it: CanonicalMIMEHeaderKey's spelling
// (gunicorn upper-cases names).
const ScriptNameField = "Script_name"

// isMountHeader reports whether the header name k, compared without case and with '-' and '_' alike, is
// SCRIPT_NAME or X_SCRIPT_NAME.
func isMountHeader(k string) bool {
	n := strings.ToUpper(strings.ReplaceAll(k, "-", "_"))
	return n == "SCRIPT_NAME" || n == "X_SCRIPT_NAME"
}
