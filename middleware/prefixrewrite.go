package middleware

import (
	"net/http"
	"net/url"
	"strings"
)

// PrefixRewrite returns middleware for an application mounted under prefix ("/app") that does not know it
// (its paths start at "/" because the gateway strips the prefix): it puts the prefix back into what the
// application tells the browser.
//
//   - Location: "/login" becomes "/app/login"; an absolute "http://HOST/login" whose host is the request's
//     own Host becomes "http://HOST/app/login". Other hosts, relative references ("next") and paths that
//     already start with the prefix ("/app/x", from an app that does know it) are left alone.
//   - Set-Cookie: "Path=/" becomes "Path=/app/", "Path=/x" becomes "Path=/app/x", so cookies of two apps
//     under different prefixes do not collide. A cookie without Path is left alone (the browser already
//     scopes it to the request path, which includes the prefix).
//
// Bodies (HTML links) are not rewritten. An empty prefix or "/" gives the identity.
func PrefixRewrite(prefix string) func(http.Handler) http.Handler {
	prefix = strings.TrimSuffix(prefix, "/")
	return func(next http.Handler) http.Handler {
		if prefix == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w = newHookWriter(w, func(h http.Header, _ int) {
				if loc := h.Get("Location"); loc != "" {
					h.Set("Location", rewriteLocation(prefix, r.Host, loc))
				}
				if cs := h.Values("Set-Cookie"); len(cs) > 0 {
					out := make([]string, len(cs))
					for i, c := range cs {
						out[i] = rewriteCookiePath(prefix, c)
					}
					h["Set-Cookie"] = out
				}
			})
			next.ServeHTTP(w, r)
		})
	}
}

func underPrefix(prefix, p string) bool {
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

func rewriteLocation(prefix, host, loc string) string {
	if strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") {
		if underPrefix(prefix, loc) || strings.HasPrefix(loc, prefix+"?") {
			return loc
		}
		return prefix + loc
	}
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" || !strings.EqualFold(u.Host, host) || (u.Scheme != "http" && u.Scheme != "https") {
		return loc
	}
	if underPrefix(prefix, u.Path) {
		return loc
	}
	orig := u.EscapedPath()
	i := strings.Index(loc, u.Host) + len(u.Host)
	if !strings.HasPrefix(loc[i:], orig) {
		u.Path, u.RawPath = prefix+u.Path, ""
		return u.String()
	}
	p := orig
	if p == "" {
		p = "/"
	}
	return loc[:i] + prefix + p + loc[i+len(orig):]
}

func rewriteCookiePath(prefix, c string) string {
	parts := strings.Split(c, ";")
	for i, a := range parts {
		k, v, ok := strings.Cut(a, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "path") || i == 0 {
			continue
		}
		v = strings.TrimSpace(v)
		if !strings.HasPrefix(v, "/") || underPrefix(prefix, v) {
			continue
		}
		parts[i] = " Path=" + prefix + v
	}
	return strings.Join(parts, ";")
}

func buildPrefixRewrite(p *params, env BuildEnv) (func(http.Handler) http.Handler, error) {
	prefix := p.String("prefix", env.RoutePrefix)
	if prefix == "" || prefix == "/" || !strings.HasPrefix(prefix, "/") {
		return nil, p.errf("prefix", prefix, "a mount prefix such as /app (by default the route's prefix; the route must not be mounted at /)")
	}
	return PrefixRewrite(prefix), nil
}
