package middleware

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/switchyard/switchyard/internal/cleanpath"
)

// RewriteOptions configures Rewrite: exactly one of Prefix and Regexp.
type RewriteOptions struct {
	// Prefix ("/old") is replaced by To ("/new") in paths equal to it or below it: /old/a becomes /new/a.
	Prefix string
	// Regexp is matched against the path; a match is replaced by To, in which $1 or ${name} refer to
	// submatches (regexp.Regexp.ReplaceAllString).
	Regexp *regexp.Regexp
	// To is the replacement path.
	To string
}

// Rewrite returns middleware that changes the request path before the application sees it; the query is
// kept. The new path is cleaned again as the front door cleans paths (internal/cleanpath, which is
// router.CleanPath), so a rewrite can never hand the application dot segments or encoded separators the
// front door would have refused (a request the new path cannot be cleaned for gets 400). The request is shallow-copied; RawPath is cleared and RequestURI updated. Paths
// the rule does not match pass unchanged.
func Rewrite(o RewriteOptions) (func(http.Handler) http.Handler, error) {
	if (o.Prefix == "") == (o.Regexp == nil) {
		return nil, fmt.Errorf("expected exactly one of prefix and regexp")
	}
	if o.Prefix != "" && !strings.HasPrefix(o.Prefix, "/") {
		return nil, fmt.Errorf("prefix %q is not a path such as /old", o.Prefix)
	}
	prefix := strings.TrimSuffix(o.Prefix, "/")
	to := o.To
	if o.Prefix != "" {
		to = strings.TrimSuffix(to, "/")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var np string
			if o.Regexp != nil {
				if !o.Regexp.MatchString(r.URL.Path) {
					next.ServeHTTP(w, r)
					return
				}
				np = o.Regexp.ReplaceAllString(r.URL.Path, to)
			} else {
				rest, ok := strings.CutPrefix(r.URL.Path, prefix)
				if !ok || rest != "" && rest[0] != '/' {
					next.ServeHTTP(w, r)
					return
				}
				np = to + rest
			}
			if np == "" || np[0] != '/' {
				np = "/" + np
			}
			clean, err := cleanpath.Clean(np)
			if err != nil {
				http.Error(w, "400 bad request path", http.StatusBadRequest)
				return
			}
			r2 := r.Clone(r.Context())
			r2.URL.Path = clean
			r2.URL.RawPath = ""
			r2.RequestURI = r2.URL.RequestURI()
			next.ServeHTTP(w, r2)
		})
	}, nil
}

func buildRewrite(p *params, _ BuildEnv) (func(http.Handler) http.Handler, error) {
	to, err := p.Required("to", "the replacement path such as /new or /users/$1")
	if err != nil {
		return nil, err
	}
	o := RewriteOptions{Prefix: p.String("prefix", ""), To: to}
	if s := p.String("regexp", ""); s != "" {
		re, err := regexp.Compile(s)
		if err != nil {
			return nil, p.errf("regexp", s, "a Go regular expression ("+err.Error()+")")
		}
		o.Regexp = re
	}
	mw, err := Rewrite(o)
	if err != nil {
		return nil, fmt.Errorf("parameters: %v", err)
	}
	return mw, nil
}
