// Package autotls gives the gateway its certificates automatically: it obtains them over ACME (RFC 8555)
// for the host names the routes serve, keeps them renewed in the background and serves them in TLS
// handshakes, next to an optional static certificate that covers some names itself.
//
// The ACME work is github.com/caddyserver/certmagic's: HTTP-01 and TLS-ALPN-01 challenges, background
// renewal (ACME Renewal Information when the CA offers it, else a share of the lifetime), OCSP stapling,
// retries with backoff, and storage in a directory with file locks, so that several gateways sharing that
// directory order each certificate once and answer each other's challenges. This package adds what the
// gateway needs around it: which names go to ACME and which to the static certificate, a per-name state
// (valid until, next renewal, last error) for the admin listener, and certmagic's log lines in the
// gateway's logger.
//
// A Manager holds no process-wide state of its own (its certificate cache is its own); certmagic keeps
// the challenges being solved in package variables, which is what lets a process answer a challenge
// another Manager of the same process presented.
package autotls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// LetsEncrypt is the default ACME directory: Let's Encrypt's production service.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// Options configure a Manager.
type Options struct {
	// Directory is the ACME directory URL ("" means LetsEncrypt).
	Directory string
	// Email is the ACME account's contact address ("" registers an account without one).
	Email string
	// Storage is the directory holding the account, the certificates, their keys and the locks. Gateways
	// sharing it share the certificates and order each once.
	Storage string
	// Roots, when not nil, are the only roots trusted for the ACME server's own HTTPS (a private CA such
	// as step-ca or Pebble); nil means the system's roots.
	Roots *x509.CertPool
	// HTTPAddr is the address of the plain HTTP listener that answers HTTP-01 challenges through
	// HTTPChallenge ("" turns HTTP-01 off). TLSAddr is the HTTPS listener whose handshakes go through
	// GetCertificate, for TLS-ALPN-01 ("" turns TLS-ALPN-01 off). The CA connects to ports 80 and 443 of
	// the name: these addresses must be where those ports arrive.
	HTTPAddr, TLSAddr string
	// Logger receives certmagic's log lines (component=acme) and the Manager's own.
	Logger *slog.Logger

	// RenewCheckInterval is how often the certificates are checked for renewal (0: certmagic's default,
	// 10 minutes). RenewalWindowRatio is the share of a certificate's lifetime, counted back from its
	// expiry, in which it is renewed when the CA gives no renewal information (0: one third). Both exist
	// for short-lived certificates; the defaults suit the 90-day and 6-day certificates of public CAs.
	RenewCheckInterval time.Duration
	RenewalWindowRatio float64
}

// Manager obtains, renews and serves certificates. Build it with New; Close stops it.
type Manager struct {
	magic  *certmagic.Config
	cache  *certmagic.Cache
	issuer *certmagic.ACMEIssuer
	logger *slog.Logger
	ratio  float64
	ctx    context.Context
	cancel context.CancelFunc

	static atomic.Pointer[staticCert]

	mu    sync.Mutex
	names map[string]*nameState // every name asked for (SetNames), ACME or static
	order []string              // names in the order SetNames gave them
}

type staticCert struct {
	cert  *tls.Certificate
	leaf  *x509.Certificate
	names []string // DNS names, lowercased; "*.example.com" for wildcards
}

// nameState is what the Manager knows of one name's certificate.
type nameState struct {
	managed   bool // given to certmagic
	obtaining bool
	attempted bool // an obtain or a load from storage finished (well or not)
	lastErr   string
	lastErrAt time.Time
	failures  int
}

// New builds a Manager; it starts nothing on the network until SetNames names something.
func New(opts Options) (*Manager, error) {
	if opts.Storage == "" {
		return nil, errors.New("autotls: no storage directory")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	m := &Manager{logger: logger, names: map[string]*nameState{}, ratio: opts.RenewalWindowRatio}
	if m.ratio == 0 {
		m.ratio = certmagic.DefaultRenewalWindowRatio
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	zl := zapToSlog(logger)
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: opts.RenewCheckInterval,
		Logger:             zl,
	})
	m.magic = certmagic.New(m.cache, certmagic.Config{
		Storage:            &certmagic.FileStorage{Path: opts.Storage},
		RenewalWindowRatio: m.ratio,
		OnEvent:            m.onEvent,
		Logger:             zl,
	})
	tmpl := certmagic.ACMEIssuer{
		CA:                      opts.Directory,
		Email:                   opts.Email,
		Agreed:                  true,
		TrustedRoots:            opts.Roots,
		DisableHTTPChallenge:    opts.HTTPAddr == "",
		DisableTLSALPNChallenge: opts.TLSAddr == "",
		Logger:                  zl,
	}
	if tmpl.CA == "" {
		tmpl.CA = LetsEncrypt
	}
	// certmagic starts its own challenge listener unless the port is taken; pointing it at the gateway's
	// listeners makes it find them taken and rely on HTTPChallenge and GetCertificate instead.
	for _, a := range []struct {
		addr string
		port *int
	}{{opts.HTTPAddr, &tmpl.AltHTTPPort}, {opts.TLSAddr, &tmpl.AltTLSALPNPort}} {
		if a.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(a.addr)
		if err != nil {
			return nil, fmt.Errorf("autotls: listener address %q: %v", a.addr, err)
		}
		if *a.port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("autotls: listener address %q: port %q", a.addr, port)
		}
		if host != "" && tmpl.ListenHost == "" {
			tmpl.ListenHost = host
		}
	}
	m.issuer = certmagic.NewACMEIssuer(m.magic, tmpl)
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// Close stops renewals, retries and the certificate cache's maintenance.
func (m *Manager) Close() {
	m.cancel()
	m.cache.Stop()
}

// SetStatic sets the static certificate (nil: none). The names it covers (its DNS names, wildcards
// included) are served from it and not ordered; a handshake without a server name, or for a name that
// is neither static nor ordered, also gets it. A name set before is not dropped from ACME by a static
// certificate that now covers it: it stops being served from ACME, and its ACME certificate stays in
// storage until it expires.
func (m *Manager) SetStatic(cert *tls.Certificate) error {
	if cert == nil {
		m.static.Store(nil)
		return nil
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("static certificate: %v", err)
		}
	}
	sc := &staticCert{cert: cert, leaf: leaf}
	for _, n := range leaf.DNSNames {
		sc.names = append(sc.names, strings.ToLower(n))
	}
	m.static.Store(sc)
	return nil
}

// covers reports whether the static certificate is valid for name.
func (sc *staticCert) covers(name string) bool {
	if sc == nil || name == "" {
		return false
	}
	for _, n := range sc.names {
		if n == name || strings.HasPrefix(n, "*.") && certmagic.MatchWildcard(name, n) {
			return true
		}
	}
	return false
}

// Covered reports whether the static certificate covers name.
func (m *Manager) Covered(name string) bool {
	return m.static.Load().covers(strings.ToLower(name))
}

// SetNames sets the names the gateway serves. Those the static certificate does not cover are handed
// to ACME: loaded from storage when a certificate is there, else ordered in the background, retried with
// backoff on failure (each failure logged with the CA's error) and renewed before they expire. It
// returns the names that went to ACME this time (new ones). Names that are no longer listed stop being
// reported; their certificates stay cached until they expire.
func (m *Manager) SetNames(names []string) ([]string, error) {
	var fresh []string
	m.mu.Lock()
	keep := map[string]bool{}
	order := []string{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if keep[n] {
			continue
		}
		keep[n] = true
		order = append(order, n)
		st := m.names[n]
		if st == nil {
			st = &nameState{}
			m.names[n] = st
		}
		if !st.managed && !m.Covered(n) {
			st.managed = true
			fresh = append(fresh, n)
		}
	}
	for n := range m.names {
		if !keep[n] {
			delete(m.names, n)
		}
	}
	m.order = order
	m.mu.Unlock()
	if len(fresh) == 0 {
		return nil, nil
	}
	if err := m.magic.ManageAsync(m.ctx, fresh); err != nil {
		return fresh, err
	}
	return fresh, nil
}

// onEvent follows certmagic's events to keep each name's state.
func (m *Manager) onEvent(_ context.Context, event string, data map[string]any) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if event == "cached_managed_cert" { // loaded from storage (at start, or renewed by another gateway)
		sans, _ := data["sans"].([]string)
		for _, n := range sans {
			if st := m.names[n]; st != nil {
				st.attempted = true
			}
		}
		return nil
	}
	name, _ := data["identifier"].(string)
	st := m.names[name]
	if st == nil {
		return nil
	}
	switch event {
	case "cert_obtaining":
		st.obtaining = true
	case "cert_obtained":
		st.obtaining, st.attempted, st.failures, st.lastErr = false, true, 0, ""
		renewal, _ := data["renewal"].(bool)
		m.logger.Info("certificate obtained", "name", name, "renewal", renewal, "issuer", data["issuer"])
	case "cert_failed":
		st.obtaining, st.attempted = false, true
		st.failures++
		st.lastErrAt = time.Now()
		err, _ := data["error"].(error)
		st.lastErr = describe(err)
		renewal, _ := data["renewal"].(bool)
		m.logger.Error("certificate could not be obtained; retrying with backoff, other names are served meanwhile",
			"name", name, "renewal", renewal, "failures", st.failures, "cause", st.lastErr)
	}
	return nil
}

// describe says what went wrong, the CA's problem document first when there is one.
func describe(err error) string {
	if err == nil {
		return "unknown error"
	}
	var p acme.Problem
	if errors.As(err, &p) {
		return p.Error()
	}
	return err.Error()
}

// GetCertificate picks the certificate of a handshake: the TLS-ALPN-01 challenge certificate when the
// CA validates a name, the static certificate for the names it covers, the ACME certificate for the names
// handed to ACME, and the static certificate (when there is one) for everything else.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if slices.Contains(hello.SupportedProtos, "acme-tls/1") {
		return m.magic.GetCertificate(hello)
	}
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	sc := m.static.Load()
	if sc.covers(name) {
		return sc.cert, nil
	}
	m.mu.Lock()
	st := m.names[name]
	managed := st != nil && st.managed
	m.mu.Unlock()
	if managed || sc == nil {
		cert, err := m.magic.GetCertificate(hello)
		if err == nil || sc == nil {
			return cert, err
		}
	}
	return sc.cert, nil
}

// TLSConfig is the TLS configuration of the HTTPS listener: GetCertificate, HTTP/2 and HTTP/1.1, and
// the acme-tls/1 protocol TLS-ALPN-01 validation speaks.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: m.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1", "acme-tls/1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// HTTPChallenge answers the CA's HTTP-01 requests (/.well-known/acme-challenge/TOKEN), also for
// challenges another gateway sharing the storage presented, and hands every other request to next.
func (m *Manager) HTTPChallenge(next http.Handler) http.Handler {
	return m.issuer.HTTPChallengeHandler(next)
}

// Status is one name's certificate state, as /api/certificates reports it.
type Status struct {
	Name string `json:"name"`
	// Source is "acme" or "static".
	Source string `json:"source"`
	// State is "valid" (a certificate is served), "obtaining" (the first order runs), "pending" (not tried
	// yet), "failed" (no certificate; LastError says why, a retry is scheduled) or "expired".
	State      string     `json:"state"`
	ValidUntil *time.Time `json:"valid_until,omitempty"`
	// NextRenewal is when renewal starts at the latest (the CA's renewal information can make it earlier).
	NextRenewal *time.Time `json:"next_renewal,omitempty"`
	Issuer      string     `json:"issuer,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	// Failures counts the failed attempts since the last success.
	Failures int `json:"failures,omitempty"`
}

// Statuses reports every name given to SetNames, in that order.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	sc := m.static.Load()
	out := make([]Status, 0, len(m.order))
	for _, n := range m.order {
		st := m.names[n]
		s := Status{Name: n, Source: "acme"}
		var leaf *x509.Certificate
		if sc.covers(n) {
			s.Source, leaf = "static", sc.leaf
		} else {
			for _, c := range m.cache.AllMatchingCertificates(n) {
				if c.Leaf != nil && (leaf == nil || c.Leaf.NotAfter.After(leaf.NotAfter)) {
					leaf = c.Leaf
				}
			}
		}
		switch {
		case leaf != nil && time.Now().After(leaf.NotAfter):
			s.State = "expired"
		case leaf != nil:
			s.State = "valid"
		case st.obtaining:
			s.State = "obtaining"
		case st.lastErr != "":
			s.State = "failed"
		default:
			s.State = "pending"
		}
		if leaf != nil {
			until := leaf.NotAfter
			s.ValidUntil = &until
			s.Issuer = leaf.Issuer.CommonName
			if s.Source == "acme" {
				life := leaf.NotAfter.Sub(leaf.NotBefore)
				renew := leaf.NotAfter.Add(-time.Duration(float64(life) * m.ratio))
				s.NextRenewal = &renew
			}
		}
		if st.lastErr != "" {
			s.LastError, s.Failures = st.lastErr, st.failures
			at := st.lastErrAt
			s.LastErrorAt = &at
		}
		out = append(out, s)
	}
	return out
}

// Settled reports whether every ACME name has a certificate or finished its first attempt (a failed
// one included: the name keeps being retried, the others are served). Readiness waits for it so that a
// fresh gateway is not sent traffic while its first certificates are still being ordered.
func (m *Manager) Settled() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, st := range m.names {
		if !st.managed || st.attempted || m.static.Load().covers(n) {
			continue
		}
		if len(m.cache.AllMatchingCertificates(n)) == 0 {
			return false
		}
	}
	return true
}
