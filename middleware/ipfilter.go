package middleware

import (
	"fmt"
	"net/http"
	"net/netip"
)

// IPFilter returns middleware answering 403 to clients (as ip resolves them) that match deny, or that match
// nothing in allow when allow is not empty. Deny wins over allow. A client whose address cannot be
// resolved is refused when either list is set.
func IPFilter(allow, deny []netip.Prefix, ip ClientIP) func(http.Handler) http.Handler {
	in := func(ps []netip.Prefix, a netip.Addr) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a := ip.Addr(r)
			if !a.IsValid() || in(deny, a) || len(allow) > 0 && !in(allow, a) {
				http.Error(w, "403 forbidden", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func buildIPFilter(p *params, env BuildEnv) (func(http.Handler) http.Handler, error) {
	allow, err := p.Prefixes("allow")
	if err != nil {
		return nil, err
	}
	deny, err := p.Prefixes("deny")
	if err != nil {
		return nil, err
	}
	if len(allow)+len(deny) == 0 {
		return nil, fmt.Errorf("expected allow=CIDRS or deny=CIDRS (such as allow=10.0.0.0/8,192.168.1.7)")
	}
	return IPFilter(allow, deny, ClientIP{Trusted: env.TrustedProxies}), nil
}
