package middleware

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP resolves the address of the client a request came from, believing X-Forwarded-For only as far
// as trusted proxies vouch for it. The client is the connection peer unless the peer lies in Trusted; then
// X-Forwarded-For is walked from right to left (the rightmost entry was appended by the nearest proxy) and
// the first address that is not itself a trusted proxy is the client. Entries left of it were written by
// the client and are never believed: a client cannot pick its own rate-limit key or pass an allow list by
// sending "X-Forwarded-For: 10.0.0.1". If every entry is trusted, the leftmost is the client; an entry that
// is not an address stops the walk at the last good hop. The zero value trusts nobody.
type ClientIP struct {
	Trusted []netip.Prefix
}

// Addr returns the client address, or the zero Addr when even the peer address cannot be parsed.
func (c ClientIP) Addr(r *http.Request) netip.Addr {
	peer := parseHostAddr(r.RemoteAddr)
	if !peer.IsValid() || !c.trusted(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := parseHostAddr(strings.TrimSpace(parts[j]))
			if !a.IsValid() {
				return client
			}
			client = a
			if !c.trusted(a) {
				return a
			}
		}
	}
	return client
}

// Trusts reports whether the connection peer of r is a trusted proxy.
func (c ClientIP) Trusts(r *http.Request) bool {
	a := parseHostAddr(r.RemoteAddr)
	return a.IsValid() && c.trusted(a)
}

func (c ClientIP) trusted(a netip.Addr) bool {
	for _, p := range c.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHostAddr reads "1.2.3.4", "1.2.3.4:5", "[::1]:5" or "::1", unmapping v4-in-v6 and dropping zones.
func parseHostAddr(s string) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return a.Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}
