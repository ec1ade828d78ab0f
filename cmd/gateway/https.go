package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchyard/switchyard/autotls"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/plan"
)

// defaultACMEStorage is where ACME state lives when GATEWAY_ACME_STORAGE is not set: systemd's
// StateDirectory= ($STATE_DIRECTORY), else $XDG_DATA_HOME/switchyard/acme, else
// ~/.local/share/switchyard/acme. environ is the whole process environment (os.Environ form).
func defaultACMEStorage(environ []string) string {
	get := func(k string) string {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	if d := get("STATE_DIRECTORY"); d != "" {
		d, _, _ = strings.Cut(d, ":") // systemd lists several directories with ':'
		return filepath.Join(d, "acme")
	}
	if d := get("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "switchyard", "acme")
	}
	if h := get("HOME"); h != "" {
		return filepath.Join(h, ".local", "share", "switchyard", "acme")
	}
	return filepath.Join(os.TempDir(), "switchyard-acme")
}

// loadCARoots reads GATEWAY_ACME_CA_ROOT ("": nil, the system's roots).
func loadCARoots(cfg config.Config) (*x509.CertPool, error) {
	if cfg.ACMECARoot == "" {
		return nil, nil
	}
	b, err := os.ReadFile(cfg.ACMECARoot)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %v", cfg.Name("GATEWAY_ACME_CA_ROOT"), cfg.ACMECARoot, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s=%q: no PEM certificate in the file", cfg.Name("GATEWAY_ACME_CA_ROOT"), cfg.ACMECARoot)
	}
	return pool, nil
}

// certPlan says which names ACME orders and which the static certificate serves, and warns about the
// wildcard route hosts nothing covers.
type certPlan struct {
	acme, static, uncovered []string
}

func planCertificates(pl *plan.Plan, static *tls.Certificate) certPlan {
	var p certPlan
	var covers func(string) bool = func(string) bool { return false }
	if static != nil {
		leaf := static.Leaf
		if leaf == nil {
			leaf, _ = x509.ParseCertificate(static.Certificate[0])
		}
		covers = func(n string) bool { return leaf != nil && leaf.VerifyHostname(n) == nil }
	}
	names, wildcards := pl.CertificateNames()
	for _, n := range names {
		if covers(n) {
			p.static = append(p.static, n)
		} else {
			p.acme = append(p.acme, n)
		}
	}
	for _, w := range wildcards {
		// A wildcard route is covered when the static certificate holds the same wildcard.
		if !covers("x" + strings.TrimPrefix(w, "*")) {
			p.uncovered = append(p.uncovered, w)
		}
	}
	return p
}

// printCertificates is `gateway check`'s HTTPS section: the ACME settings and which names go where,
// without contacting the ACME server.
func printCertificates(w io.Writer, cfg config.Config, pl *plan.Plan) error {
	if !cfg.TLSOn() {
		return nil
	}
	var static *tls.Certificate
	if cfg.TLSCert != "" {
		c, err := gateway.LoadCertificate(cfg)
		if err != nil {
			return err
		}
		static = c
	}
	fmt.Fprintf(w, "\nhttps on %s", cfg.Addr)
	if cfg.HTTPAddr != "" {
		fmt.Fprintf(w, ", plain http on %s (ACME challenges, redirects to https)", cfg.HTTPAddr)
	}
	fmt.Fprintln(w)
	if !cfg.ACME {
		return nil
	}
	if _, err := loadCARoots(cfg); err != nil {
		return err
	}
	p := planCertificates(pl, static)
	email := cfg.ACMEEmail
	if email == "" {
		email = "(none)"
	}
	fmt.Fprintf(w, "acme directory %s, contact %s, storage %s\n", cfg.ACMECA, email, cfg.ACMEStorage)
	if len(p.acme) > 0 {
		fmt.Fprintf(w, "  certificates from ACME: %s\n", strings.Join(p.acme, " "))
	}
	if len(p.static) > 0 {
		fmt.Fprintf(w, "  served by the static certificate (%s): %s\n", cfg.TLSCert, strings.Join(p.static, " "))
	}
	for _, u := range p.uncovered {
		fmt.Fprintf(w, "warning: route host %s: a wildcard certificate needs the DNS-01 challenge, which the gateway does not do; give a static certificate covering it (GATEWAY_TLS_CERT)\n", u)
	}
	return nil
}

// newACME builds the certificate manager for cfg with its static certificate (nil: none) and hands it
// the names; httpAddr and tlsAddr are the listeners actually bound (for the challenges).
func newACME(cfg config.Config, pl *plan.Plan, static *tls.Certificate, httpAddr, tlsAddr net.Addr, logger *slog.Logger) (*autotls.Manager, error) {
	roots, err := loadCARoots(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.ACMEStorage, 0o700); err != nil {
		return nil, fmt.Errorf("%s=%q: %v", cfg.Name("GATEWAY_ACME_STORAGE"), cfg.ACMEStorage, err)
	}
	opts := autotls.Options{Directory: cfg.ACMECA, Email: cfg.ACMEEmail, Storage: cfg.ACMEStorage, Roots: roots, Logger: logger,
		TLSAddr: tlsAddr.String()}
	if httpAddr != nil {
		opts.HTTPAddr = httpAddr.String()
	}
	m, err := autotls.New(opts)
	if err != nil {
		return nil, err
	}
	if err := m.SetStatic(static); err != nil {
		m.Close()
		return nil, err
	}
	if err := setACMENames(m, cfg, pl, static, logger); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// setACMENames hands the configuration's names to m and logs the plan.
func setACMENames(m *autotls.Manager, cfg config.Config, pl *plan.Plan, static *tls.Certificate, logger *slog.Logger) error {
	p := planCertificates(pl, static)
	for _, u := range p.uncovered {
		logger.Warn("a wildcard route host gets no certificate: it needs the DNS-01 challenge, which the gateway does not do; give a static certificate covering it (GATEWAY_TLS_CERT)", "host", u)
	}
	names, _ := pl.CertificateNames()
	fresh, err := m.SetNames(names)
	if len(fresh) > 0 {
		logger.Info("certificates managed by ACME", "names", strings.Join(fresh, " "), "directory", cfg.ACMECA, "storage", cfg.ACMEStorage)
	}
	return err
}
