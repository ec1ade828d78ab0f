// Package cidr owns the one reading of an address range the gateway's settings accept (trusted proxies,
// allow and deny lists): a CIDR ("10.0.0.0/8", "2001:db8::/32") or a single address ("192.168.1.7",
// "::1"), IPv4-mapped IPv6 forms folded to IPv4, masked to the network.
package cidr

import (
	"fmt"
	"net/netip"
	"strings"
)

// Parse reads s. The error names the value and what is expected.
func Parse(s string) (netip.Prefix, error) {
	bad := func() (netip.Prefix, error) {
		return netip.Prefix{}, fmt.Errorf("invalid address range %q: expected an address range such as 10.0.0.0/8 or an address such as 192.168.1.7", s)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return bad()
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return bad()
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
