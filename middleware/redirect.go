package middleware

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// RedirectOptions configures Redirect.
type RedirectOptions struct {
	// To is the target. These placeholders are replaced: $path (the request path, escaped), $rest (the path
	// below From, "" without From), $query ("?" and the raw query, or ""), $host (the Host header) and
	// $scheme ("https" over TLS or when a trusted proxy said so, else "http"). A target without
	// placeholders is used as it is, except in the prefix form.
	To string
	// From, when set, is a path prefix ("/old"): only paths equal to it or below it are redirected, others
	// go on to the application. If To has no placeholders, the rest of the path and the query are
	// appended: From=/old To=/new sends /old/a?b to /new/a?b (the prefix form).
	From string
	// Status is 301, 302, 303, 307 or 308; 0 means 302.
	Status int
	// Trusted are the proxies whose X-Forwarded-Proto is believed for $scheme.
	Trusted []netip.Prefix
}

// Redirect returns middleware answering matching requests with a redirect. $path and $rest come from the
// cleaned path, which never starts with "//", so a redirect to "$path" cannot be turned into an open
// redirect to another host.
func Redirect(o RedirectOptions) (func(http.Handler) http.Handler, error) {
	if o.Status == 0 {
		o.Status = http.StatusFound
	}
	switch o.Status {
	case 301, 302, 303, 307, 308:
	default:
		return nil, fmt.Errorf("status %d is not a redirect status (301, 302, 303, 307 or 308)", o.Status)
	}
	if o.To == "" {
		return nil, fmt.Errorf("empty redirect target")
	}
	from := strings.TrimSuffix(o.From, "/")
	if o.From != "" && !strings.HasPrefix(o.From, "/") {
		return nil, fmt.Errorf("from %q is not a path prefix such as /old", o.From)
	}
	placeholders := strings.Contains(o.To, "$")
	ip := ClientIP{Trusted: o.Trusted}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			path := r.URL.EscapedPath()
			rest := ""
			if o.From != "" {
				var ok bool
				rest, ok = strings.CutPrefix(path, from)
				if !ok || rest != "" && rest[0] != '/' {
					next.ServeHTTP(w, r)
					return
				}
			}
			query := ""
			if r.URL.RawQuery != "" {
				query = "?" + r.URL.RawQuery
			}
			target := o.To
			if placeholders {
				scheme := "http"
				if isHTTPS(r, ip) {
					scheme = "https"
				}
				target = strings.NewReplacer("$path", path, "$rest", rest, "$query", query, "$host", r.Host, "$scheme", scheme).Replace(o.To)
			} else if o.From != "" {
				target = strings.TrimSuffix(o.To, "/") + rest + query
				if target == "" {
					target = "/"
				}
			}
			http.Redirect(w, r, target, o.Status)
		})
	}, nil
}

// isHTTPS reports whether the client used https: TLS on this connection, or X-Forwarded-Proto: https from a
// trusted proxy.
func isHTTPS(r *http.Request, ip ClientIP) bool {
	if r.TLS != nil {
		return true
	}
	return ip.Trusts(r) && strings.EqualFold(strings.TrimSpace(lastValue(r.Header.Values("X-Forwarded-Proto"))), "https")
}

// lastValue returns the rightmost comma-separated item of a header (the nearest proxy's claim).
func lastValue(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	v := vs[len(vs)-1]
	if i := strings.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return v
}

func buildRedirect(p *params, env BuildEnv) (func(http.Handler) http.Handler, error) {
	to, err := p.Required("to", "a target such as https://$host$path$query or /new")
	if err != nil {
		return nil, err
	}
	status, err := p.Int("status", 302, 301, 308)
	if err != nil {
		return nil, err
	}
	mw, err := Redirect(RedirectOptions{To: to, From: p.String("from", ""), Status: status, Trusted: env.TrustedProxies})
	if err != nil {
		return nil, fmt.Errorf("parameters: %v", err)
	}
	return mw, nil
}
