package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v4"
)

// LetsEncryptDirectory is the default ACME directory (GATEWAY_ACME_CA): Let's Encrypt's production service.
const LetsEncryptDirectory = "https://acme-v02.api.letsencrypt.org/directory"

// NameList is a comma-separated list of DNS host names ("shop.example.com,www.example.com").
type NameList []string

// UnmarshalText implements encoding.TextUnmarshaler; names are lowercased, a trailing dot dropped.
func (l *NameList) UnmarshalText(b []byte) error {
	var out NameList
	for _, f := range strings.Split(string(b), ",") {
		f = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(f), "."))
		if f == "" {
			continue
		}
		if err := CheckCertificateName(f); err != nil {
			return err
		}
		out = append(out, f)
	}
	*l = out
	return nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *NameList) UnmarshalYAML(node *yaml.Node) error { return unmarshalListYAML(node, l) }

// CheckCertificateName accepts a DNS name (lowercase, without a trailing dot) a public ACME CA can
// validate over HTTP-01 or TLS-ALPN-01.
func CheckCertificateName(n string) error {
	if strings.HasPrefix(n, "*.") {
		return fmt.Errorf("%q: a wildcard certificate needs the DNS-01 challenge, which the gateway does not do: list the names, or give a static certificate covering them (GATEWAY_TLS_CERT)", n)
	}
	if _, err := netip.ParseAddr(n); err == nil {
		return fmt.Errorf("%q: an IP address, not a host name: ACME certificates are for host names here", n)
	}
	if len(n) > 253 || !strings.Contains(n, ".") {
		return fmt.Errorf("%q: expected a fully qualified host name such as shop.example.com", n)
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q: expected a host name such as shop.example.com (label %q)", n, label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q: expected a host name of letters, digits, '-' and '.' (IDNs in their xn-- form)", n)
			}
		}
	}
	return nil
}

// TLSOn reports whether the gateway serves HTTPS: a static certificate or ACME.
func (c Config) TLSOn() bool { return c.TLSCert != "" || c.ACME }

// validateTLS checks the HTTPS, ACME and plain HTTP listener settings (no file is read, the ACME server
// is not contacted). Whether ACME has a name to get a certificate for depends on the routes' hosts: the
// plan checks it (package plan).
func validateTLS(c Config) Errors {
	var errs Errors
	if c.ACME {
		u, err := url.Parse(c.ACMECA)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			errs = append(errs, fmt.Errorf("%s=%q: expected the ACME directory URL, such as %s", c.Name("GATEWAY_ACME_CA"), c.ACMECA, LetsEncryptDirectory))
		} else if u.Scheme == "http" {
			errs = append(errs, fmt.Errorf("%s=%q: an ACME directory is served over https (RFC 8555 section 6.1)", c.Name("GATEWAY_ACME_CA"), c.ACMECA))
		}
		if c.ACMEEmail != "" {
			if a, err := mail.ParseAddress(c.ACMEEmail); err != nil || a.Address != c.ACMEEmail {
				errs = append(errs, fmt.Errorf("%s=%q: expected an e-mail address such as ops@example.com", c.Name("GATEWAY_ACME_EMAIL"), c.ACMEEmail))
			}
		}
	} else {
		for _, v := range []string{"GATEWAY_ACME_EMAIL", "GATEWAY_ACME_STORAGE", "GATEWAY_ACME_NAMES", "GATEWAY_ACME_CA_ROOT"} {
			if _, set := c.Sources[v]; set {
				errs = append(errs, fmt.Errorf("%s is set but ACME is off: set %s=true, or remove it", c.Name(v), c.Ref("GATEWAY_ACME", v)))
			}
		}
	}
	if _, set := c.Sources["GATEWAY_HTTP3"]; set && c.HTTP3 && !c.TLSOn() {
		errs = append(errs, fmt.Errorf("%s=true: HTTP/3 always runs over TLS, which is off: set %s=true or %s and %s", c.Name("GATEWAY_HTTP3"),
			c.Ref("GATEWAY_ACME", "GATEWAY_HTTP3"), c.Ref("GATEWAY_TLS_CERT", "GATEWAY_HTTP3"), c.Ref("GATEWAY_TLS_KEY", "GATEWAY_HTTP3")))
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: expected host:port such as :80, or empty for no plain HTTP listener", c.Name("GATEWAY_HTTP_ADDR"), c.HTTPAddr))
		} else if !c.TLSOn() {
			errs = append(errs, fmt.Errorf("%s=%q: the plain HTTP listener redirects to HTTPS, which is off: set %s=true or %s and %s", c.Name("GATEWAY_HTTP_ADDR"), c.HTTPAddr,
				c.Ref("GATEWAY_ACME", "GATEWAY_HTTP_ADDR"), c.Ref("GATEWAY_TLS_CERT", "GATEWAY_HTTP_ADDR"), c.Ref("GATEWAY_TLS_KEY", "GATEWAY_HTTP_ADDR")))
		} else if _, port, _ := net.SplitHostPort(c.HTTPAddr); c.HTTPAddr == c.Addr && port != "0" {
			errs = append(errs, fmt.Errorf("%s=%q: the same address as %s", c.Name("GATEWAY_HTTP_ADDR"), c.HTTPAddr, c.Name("GATEWAY_ADDR")))
		}
	}
	return errs
}
