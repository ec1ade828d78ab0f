package middleware

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// HeaderRules edits headers. Names are canonicalised; Remove runs first, then Set (replacing every value),
// then Add (appending).
type HeaderRules struct {
	Set    map[string]string
	Add    map[string]string
	Remove []string
}

func (h HeaderRules) apply(hdr http.Header) {
	for _, k := range h.Remove {
		hdr.Del(k)
	}
	for k, v := range h.Set {
		hdr.Set(k, v)
	}
	for k, v := range h.Add {
		hdr.Add(k, v)
	}
}

func (h HeaderRules) empty() bool { return len(h.Set)+len(h.Add)+len(h.Remove) == 0 }

// Headers returns middleware that edits request headers before the application sees them and response
// headers just before they are sent (so rules also apply to headers the application set, and a Set
// replaces the application's value rather than duplicating it). Response rules apply to every final
// response, error pages included, not to 1xx or hijacked connections.
func Headers(request, response HeaderRules) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !request.empty() {
				request.apply(r.Header)
			}
			if !response.empty() {
				w = newHookWriter(w, func(h http.Header, _ int) { response.apply(h) })
			}
			next.ServeHTTP(w, r)
		})
	}
}

func buildHeaders(p *params, _ BuildEnv) (func(http.Handler) http.Handler, error) {
	var rules [2]HeaderRules
	for i, side := range []string{"request", "response"} {
		r := HeaderRules{Set: map[string]string{}, Add: map[string]string{}}
		for op, m := range map[string]map[string]string{"set": r.Set, "add": r.Add} {
			for k, v := range p.WithPrefix(side + "." + op + ".") {
				if !validHeaderName(k) {
					return nil, fmt.Errorf("parameter %s.%s.%s: %q is not a header name", side, op, k, k)
				}
				if !validHeaderValue(v) {
					return nil, p.errf(side+"."+op+"."+k, v, "a header value without control characters")
				}
				m[textproto.CanonicalMIMEHeaderKey(k)] = v
			}
		}
		for _, k := range p.List(side + ".remove") {
			if !validHeaderName(k) {
				return nil, p.errf(side+".remove", k, "header names separated by commas")
			}
			r.Remove = append(r.Remove, k)
		}
		rules[i] = r
	}
	if rules[0].empty() && rules[1].empty() {
		return nil, fmt.Errorf("no rules: expected parameters such as request.set.X-Name=value, response.add.X-Name=value, response.remove=Server,X-Powered-By")
	}
	return Headers(rules[0], rules[1]), nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters other than tab (a CR or LF would split the header).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
