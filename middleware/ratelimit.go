package middleware

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/httprate"
)

// RateLimit returns middleware allowing each client at most n requests per window (a sliding window, from
// github.com/go-chi/httprate), keyed by the client address ip resolves, so that clients behind a trusted
// proxy are counted separately and a client cannot escape its budget by sending X-Forwarded-For. Requests
// over the budget get 429 with Retry-After (whole seconds, at least 1) and X-RateLimit-* headers. Counters
// live in this middleware: two gateways, or two routes, never share them.
func RateLimit(n int, window time.Duration, ip ClientIP) func(http.Handler) http.Handler {
	retry := strconv.Itoa(max(1, int(math.Ceil(window.Seconds()))))
	key := func(r *http.Request) (string, error) {
		a := ip.Addr(r)
		if !a.IsValid() {
			return r.RemoteAddr, nil
		}
		return a.String(), nil
	}
	return httprate.LimitBy(n, window, key, httprate.WithLimitHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", retry)
		http.Error(w, "429 too many requests", http.StatusTooManyRequests)
	}))
}

// ParseRate reads "100/1m", "10/s" or "5/30s": a request count and a window (a bare unit means one of it).
func ParseRate(s string) (int, time.Duration, error) {
	ns, ws, ok := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.Atoi(strings.TrimSpace(ns))
	if !ok || err != nil || n < 1 {
		return 0, 0, fmt.Errorf("invalid rate %q: expected COUNT/WINDOW such as 100/1m or 10/s", s)
	}
	ws = strings.TrimSpace(ws)
	if ws != "" && (ws[0] < '0' || ws[0] > '9') {
		ws = "1" + ws
	}
	d, err := time.ParseDuration(ws)
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("invalid rate %q: expected COUNT/WINDOW such as 100/1m or 10/s", s)
	}
	return n, d, nil
}

func buildRateLimit(p *params, env BuildEnv) (func(http.Handler) http.Handler, error) {
	v, err := p.Required("rate", "COUNT/WINDOW such as 100/1m")
	if err != nil {
		return nil, err
	}
	n, d, err := ParseRate(v)
	if err != nil {
		return nil, p.errf("rate", v, "COUNT/WINDOW such as 100/1m or 10/s")
	}
	return RateLimit(n, d, ClientIP{Trusted: env.TrustedProxies}), nil
}
