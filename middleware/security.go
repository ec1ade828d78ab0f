package middleware

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// SecurityOptions configures SecurityHeaders. Empty strings leave a header out.
type SecurityOptions struct {
	// HSTSMaxAge is Strict-Transport-Security's max-age; 0 sends no HSTS.
	HSTSMaxAge            time.Duration
	HSTSIncludeSubdomains bool
	HSTSPreload           bool
	// ContentTypeOptions is X-Content-Type-Options ("nosniff").
	ContentTypeOptions string
	// FrameOptions is X-Frame-Options ("DENY" or "SAMEORIGIN").
	FrameOptions string
	// ReferrerPolicy is Referrer-Policy ("strict-origin-when-cross-origin").
	ReferrerPolicy string
	// CSP is Content-Security-Policy; optional because a wrong policy breaks pages.
	CSP string
	// Trusted are the proxies whose X-Forwarded-Proto: https counts as https.
	Trusted []netip.Prefix
}

// DefaultSecurity is what security_headers sends without parameters: HSTS for one year over https, nosniff,
// SAMEORIGIN framing, strict-origin-when-cross-origin referrers, no CSP.
func DefaultSecurity() SecurityOptions {
	return SecurityOptions{HSTSMaxAge: 365 * 24 * time.Hour, ContentTypeOptions: "nosniff", FrameOptions: "SAMEORIGIN", ReferrerPolicy: "strict-origin-when-cross-origin"}
}

// SecurityHeaders returns middleware adding security headers to every response, unless the application set
// the same header itself (the application knows its pages better). Strict-Transport-Security is sent
// only over https (TLS on this connection, or X-Forwarded-Proto: https from a trusted proxy): over plain
// http a browser ignores it, and a spoofed https claim must not pin a host that is not served over TLS.
func SecurityHeaders(o SecurityOptions) func(http.Handler) http.Handler {
	hsts := ""
	if o.HSTSMaxAge > 0 {
		hsts = "max-age=" + strconv.FormatInt(int64(o.HSTSMaxAge/time.Second), 10)
		if o.HSTSIncludeSubdomains {
			hsts += "; includeSubDomains"
		}
		if o.HSTSPreload {
			hsts += "; preload"
		}
	}
	fixed := [][2]string{
		{"X-Content-Type-Options", o.ContentTypeOptions},
		{"X-Frame-Options", o.FrameOptions},
		{"Referrer-Policy", o.ReferrerPolicy},
		{"Content-Security-Policy", o.CSP},
	}
	ip := ClientIP{Trusted: o.Trusted}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			https := hsts != "" && isHTTPS(r, ip)
			w = newHookWriter(w, func(h http.Header, _ int) {
				for _, kv := range fixed {
					if kv[1] != "" && h.Get(kv[0]) == "" {
						h.Set(kv[0], kv[1])
					}
				}
				if https && h.Get("Strict-Transport-Security") == "" {
					h.Set("Strict-Transport-Security", hsts)
				}
			})
			next.ServeHTTP(w, r)
		})
	}
}

func buildSecurityHeaders(p *params, env BuildEnv) (func(http.Handler) http.Handler, error) {
	o := DefaultSecurity()
	o.Trusted = env.TrustedProxies
	secs, err := p.Int("hsts_max_age", int(o.HSTSMaxAge/time.Second), 0, 10*365*24*3600)
	if err != nil {
		return nil, err
	}
	o.HSTSMaxAge = time.Duration(secs) * time.Second
	if o.HSTSIncludeSubdomains, err = p.Bool("hsts_include_subdomains", false); err != nil {
		return nil, err
	}
	if o.HSTSPreload, err = p.Bool("hsts_preload", false); err != nil {
		return nil, err
	}
	o.ContentTypeOptions = p.String("content_type_options", o.ContentTypeOptions)
	o.FrameOptions = p.String("frame_options", o.FrameOptions)
	o.ReferrerPolicy = p.String("referrer_policy", o.ReferrerPolicy)
	o.CSP = p.String("csp", "")
	for k, v := range map[string]string{"content_type_options": o.ContentTypeOptions, "frame_options": o.FrameOptions, "referrer_policy": o.ReferrerPolicy, "csp": o.CSP} {
		if !validHeaderValue(v) {
			return nil, p.errf(k, v, "a header value without control characters")
		}
	}
	return SecurityHeaders(o), nil
}
