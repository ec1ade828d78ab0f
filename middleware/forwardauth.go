package middleware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/transportguard"
)

// ForwardAuthOptions configures ForwardAuth.
type ForwardAuthOptions struct {
	// URL is the auth application's endpoint (http:// or https://).
	URL string
	// ResponseHeaders are copied from a 2xx auth answer onto the request the application sees (X-Auth-User,
	// X-Auth-Email, ...). Client-sent headers of these names are always removed first, so a client cannot
	// forge an identity the auth app did not give.
	ResponseHeaders []string
	// Timeout bounds the whole auth request; 0 means 5s.
	Timeout time.Duration
	// Trusted are the proxies whose X-Forwarded-For/-Proto are passed on.
	Trusted []netip.Prefix
	Logger  *slog.Logger
	// Transport is used to reach the auth app; nil means a private http.Transport whose keep-alive
	// connections are guarded against unsolicited answers (internal/transportguard).
	Transport http.RoundTripper
}

// hopHeaders are connection-scoped and never forwarded to the auth app or copied back.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// ForwardAuth returns middleware that asks an auth application whether each request may pass. The auth app
// receives a GET with the original request's headers (no body), plus X-Forwarded-Method, X-Forwarded-Uri
// (path and query), X-Forwarded-Host, X-Forwarded-Proto and X-Forwarded-For (the resolved client address).
// A 2xx answer lets the request through, with ResponseHeaders copied onto it. Any other answer (401 with a
// login redirect, 403, ...) is returned to the client as it is, headers and body, and the application is
// not called. Redirects from the auth app are passed to the client, not followed. If the auth app cannot
// be reached the client gets 502, if it does not answer within Timeout 504; each is logged once.
func ForwardAuth(o ForwardAuthOptions) (func(http.Handler) http.Handler, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url %q is not an http:// or https:// URL", o.URL)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	rt := o.Transport
	if rt == nil {
		// Guarded: an auth app that answers twice must never have its stale answer (a 2xx with another
		// user's X-Auth-User) read as the answer to the next check on a reused connection.
		rt = transportguard.Wrap(&http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: o.Timeout}).DialContext,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       60 * time.Second,
			ResponseHeaderTimeout: o.Timeout,
		})
	}
	client := &http.Client{
		Transport:     rt,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ip := ClientIP{Trusted: o.Trusted}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for _, h := range o.ResponseHeaders {
				r.Header.Del(h)
			}
			ctx, cancel := context.WithTimeout(r.Context(), o.Timeout)
			defer cancel()
			areq, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
			if err != nil {
				http.Error(w, "502 bad gateway", http.StatusBadGateway)
				return
			}
			for k, vv := range r.Header {
				areq.Header[k] = append([]string(nil), vv...)
			}
			for _, h := range hopHeaders {
				areq.Header.Del(h)
			}
			areq.Header.Del("Content-Length")
			areq.Header.Set("X-Forwarded-Method", r.Method)
			areq.Header.Set("X-Forwarded-Uri", r.URL.RequestURI())
			areq.Header.Set("X-Forwarded-Host", r.Host)
			proto := "http"
			if isHTTPS(r, ip) {
				proto = "https"
			}
			areq.Header.Set("X-Forwarded-Proto", proto)
			if a := ip.Addr(r); a.IsValid() {
				areq.Header.Set("X-Forwarded-For", a.String())
			}
			resp, err := client.Do(areq)
			if err != nil {
				if r.Context().Err() != nil {
					return // the client went away: nobody to answer
				}
				status := http.StatusBadGateway
				var ne net.Error
				if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
					status = http.StatusGatewayTimeout
				}
				o.Logger.LogAttrs(r.Context(), slog.LevelError, "forward auth failed",
					slog.String("auth_url", o.URL), slog.Int("status", status), slog.String("cause", err.Error()))
				http.Error(w, fmt.Sprintf("%d %s", status, strings.ToLower(http.StatusText(status))), status)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
				for _, h := range o.ResponseHeaders {
					if vv := resp.Header.Values(h); len(vv) > 0 {
						r.Header[http.CanonicalHeaderKey(h)] = append([]string(nil), vv...)
					}
				}
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				cancel()
				next.ServeHTTP(w, r)
				return
			}
			for k, vv := range resp.Header {
				w.Header()[k] = vv
			}
			for _, h := range hopHeaders {
				w.Header().Del(h)
			}
			w.WriteHeader(resp.StatusCode)
			if _, err := io.Copy(w, resp.Body); err != nil && r.Context().Err() == nil {
				panic(http.ErrAbortHandler)
			}
		})
	}, nil
}

func buildForwardAuth(p *params, env BuildEnv) (func(http.Handler) http.Handler, error) {
	u, err := p.Required("url", "the auth app's URL such as http://127.0.0.1:9091/verify")
	if err != nil {
		return nil, err
	}
	var hs []string
	for _, h := range p.List("response_headers") {
		if !validHeaderName(h) {
			return nil, p.errf("response_headers", h, "header names separated by commas such as X-Auth-User,X-Auth-Email")
		}
		hs = append(hs, h)
	}
	d, err := p.Duration("timeout", 5*time.Second)
	if err != nil {
		return nil, err
	}
	mw, err := ForwardAuth(ForwardAuthOptions{URL: u, ResponseHeaders: hs, Timeout: d, Trusted: env.TrustedProxies, Logger: env.Logger})
	if err != nil {
		return nil, p.errf("url", u, "an http:// or https:// URL")
	}
	return mw, nil
}
