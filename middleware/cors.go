package middleware

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CORSOptions configures CORS.
type CORSOptions struct {
	// Origins are allowed origins ("https://app.example.com", compared case-insensitively), or "*" for any.
	Origins []string
	// Methods are allowed in preflights; empty means GET, HEAD, POST.
	Methods []string
	// Headers are request headers allowed in preflights; empty means none beyond the CORS-safelisted ones.
	Headers []string
	// Expose lists response headers scripts may read.
	Expose []string
	// Credentials allows cookies and Authorization; it cannot be combined with "*" (a credentialed
	// wildcard would let every site read a user's private data).
	Credentials bool
	// MaxAge lets browsers cache a preflight answer; 0 sends no Access-Control-Max-Age.
	MaxAge time.Duration
}

// CORS returns middleware implementing cross-origin resource sharing in the gateway: a preflight
// (OPTIONS with Origin and Access-Control-Request-Method) is answered here, 204 when the origin and method
// are allowed and 403 otherwise, and never reaches the application; on other requests from an allowed
// origin the Access-Control-Allow-Origin/-Credentials/-Expose-Headers headers are set on the response
// (replacing any the application set). Requests without Origin pass untouched. Vary: Origin is added.
func CORS(o CORSOptions) (func(http.Handler) http.Handler, error) {
	any := false
	origins := map[string]bool{}
	for _, s := range o.Origins {
		if s == "*" {
			any = true
			continue
		}
		if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") || strings.Count(s, "/") != 2 {
			return nil, fmt.Errorf("origin %q is not * or scheme://host[:port] (no path)", s)
		}
		origins[strings.ToLower(s)] = true
	}
	if !any && len(origins) == 0 {
		return nil, fmt.Errorf("no origins")
	}
	if any && o.Credentials {
		return nil, fmt.Errorf("credentials cannot be allowed for origin *")
	}
	if len(o.Methods) == 0 {
		o.Methods = []string{"GET", "HEAD", "POST"}
	}
	methods := map[string]bool{}
	for i, m := range o.Methods {
		o.Methods[i] = strings.ToUpper(m)
		methods[o.Methods[i]] = true
	}
	allowedHeaders := map[string]bool{}
	for _, h := range o.Headers {
		allowedHeaders[strings.ToLower(h)] = true
	}
	allowMethods := strings.Join(o.Methods, ", ")
	allowHeaders := strings.Join(o.Headers, ", ")
	expose := strings.Join(o.Expose, ", ")
	maxAge := ""
	if o.MaxAge > 0 {
		maxAge = strconv.Itoa(int(o.MaxAge.Seconds()))
	}
	allowed := func(origin string) bool { return any || origins[strings.ToLower(origin)] }
	allowOrigin := func(origin string) string {
		if any {
			return "*"
		}
		return origin
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			w.Header().Add("Vary", "Origin")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				w.Header().Add("Vary", "Access-Control-Request-Method")
				w.Header().Add("Vary", "Access-Control-Request-Headers")
				if !allowed(origin) || !methods[strings.ToUpper(r.Header.Get("Access-Control-Request-Method"))] || !headersAllowed(allowedHeaders, r.Header.Values("Access-Control-Request-Headers")) {
					http.Error(w, "403 CORS preflight refused", http.StatusForbidden)
					return
				}
				h := w.Header()
				h.Set("Access-Control-Allow-Origin", allowOrigin(origin))
				h.Set("Access-Control-Allow-Methods", allowMethods)
				if allowHeaders != "" {
					h.Set("Access-Control-Allow-Headers", allowHeaders)
				}
				if o.Credentials {
					h.Set("Access-Control-Allow-Credentials", "true")
				}
				if maxAge != "" {
					h.Set("Access-Control-Max-Age", maxAge)
				}
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if !allowed(origin) {
				next.ServeHTTP(w, r)
				return
			}
			w = newHookWriter(w, func(h http.Header, _ int) {
				h.Set("Access-Control-Allow-Origin", allowOrigin(origin))
				if o.Credentials {
					h.Set("Access-Control-Allow-Credentials", "true")
				}
				if expose != "" {
					h.Set("Access-Control-Expose-Headers", expose)
				}
			})
			next.ServeHTTP(w, r)
		})
	}, nil
}

func headersAllowed(allowed map[string]bool, req []string) bool {
	for _, line := range req {
		for _, h := range strings.Split(line, ",") {
			if h = strings.TrimSpace(h); h != "" && !allowed[strings.ToLower(h)] {
				return false
			}
		}
	}
	return true
}

func buildCORS(p *params, _ BuildEnv) (func(http.Handler) http.Handler, error) {
	o := CORSOptions{Origins: p.List("origins"), Methods: p.List("methods"), Headers: p.List("headers"), Expose: p.List("expose")}
	var err error
	if o.Credentials, err = p.Bool("credentials", false); err != nil {
		return nil, err
	}
	if o.MaxAge, err = p.Duration("max_age", 0); err != nil {
		return nil, err
	}
	mw, err := CORS(o)
	if err != nil {
		return nil, p.errf("origins", p.m["origins"], "* or origins such as https://app.example.com separated by commas ("+err.Error()+")")
	}
	return mw, nil
}
