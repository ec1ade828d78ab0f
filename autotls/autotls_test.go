package autotls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/pebbletest"
)

// syncBuffer is a log sink the Manager's goroutines and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a Manager behind real loopback listeners (HTTPS with its TLSConfig, plain HTTP with its
// HTTPChallenge) and a Pebble validating against them.
type harness struct {
	m      *Manager
	pebble *pebbletest.Server
	tlsLn  net.Listener
	log    *syncBuffer
}

type harnessOptions struct {
	http01, tlsalpn01 bool
	validity          time.Duration
	ratio             float64
	unresolvable      []string
	ocspURL           string // written into the certificates Pebble issues
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	pebbletest.Binary(t) // skip early when there is no Pebble
	h := &harness{log: &syncBuffer{}}
	var err error
	if h.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.pebble = pebbletest.Start(t, pebbletest.Options{
		HTTPPort: httpLn.Addr().(*net.TCPAddr).Port, TLSPort: h.tlsLn.Addr().(*net.TCPAddr).Port,
		Validity: o.validity, Unresolvable: o.unresolvable, OCSPResponderURL: o.ocspURL,
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(mustRead(t, h.pebble.RootFile))
	opts := Options{Directory: h.pebble.Directory, Storage: t.TempDir(), Roots: roots, Email: "ops@switchyard.test",
		Logger:             slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RenewCheckInterval: time.Second, RenewalWindowRatio: o.ratio}
	if o.http01 {
		opts.HTTPAddr = httpLn.Addr().String()
	}
	if o.tlsalpn01 {
		opts.TLSAddr = h.tlsLn.Addr().String()
	}
	if h.m, err = New(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.m.Close)
	hs := &http.Server{Handler: h.m.HTTPChallenge(http.NotFoundHandler())}
	ts := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello ", r.Host) })}
	go hs.Serve(httpLn)
	go ts.Serve(tls.NewListener(h.tlsLn, h.m.TLSConfig()))
	t.Cleanup(func() { hs.Close(); ts.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s\npebble log:\n%s", h.log.String(), h.pebble.Log())
		}
	})
	return h
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitStatus polls the Manager's state of name until cond holds; the deadline only guards a hung test.
func (h *harness) waitStatus(t *testing.T, name string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for range tick.C {
		for _, s := range h.m.Statuses() {
			if s.Name == name && cond(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: condition not reached within 45s; statuses %+v", name, h.m.Statuses())
		}
	}
	return Status{}
}

// get fetches https://name/ from the harness's listener, verifying the certificate against Pebble's
// issuing roots, and returns the body and the served leaf.
func (h *harness) get(t *testing.T, name string, roots *x509.CertPool) (string, *x509.Certificate) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name},
		DialContext: func(ctx2 context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx2, network, h.tlsLn.Addr().String())
		},
	}}
	resp, err := c.Get("https://" + name + "/")
	if err != nil {
		t.Fatalf("GET https://%s/: %v", name, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.String(), resp.TLS.PeerCertificates[0]
}

func TestIssuanceOverEachChallengeType(t *testing.T) {
	for _, tc := range []struct {
		name              string
		http01, tlsalpn01 bool
	}{
		{"HTTP-01 through the plain HTTP handler", true, false},
		{"TLS-ALPN-01 through the HTTPS listener's handshakes", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{http01: tc.http01, tlsalpn01: tc.tlsalpn01})
			if _, err := h.m.SetNames([]string{"shop.switchyard.test"}); err != nil {
				t.Fatal(err)
			}
			s := h.waitStatus(t, "shop.switchyard.test", func(s Status) bool { return s.State == "valid" || s.State == "failed" })
			if s.State != "valid" || s.Source != "acme" || s.ValidUntil == nil || s.NextRenewal == nil {
				t.Fatalf("status %+v, want a valid ACME certificate with its expiry and renewal", s)
			}
			body, leaf := h.get(t, "shop.switchyard.test", h.pebble.IssuingRoots(t))
			if body != "hello shop.switchyard.test" || !leaf.NotAfter.Equal(*s.ValidUntil) {
				t.Errorf("served %q with a certificate until %v; status says until %v", body, leaf.NotAfter, s.ValidUntil)
			}
			want := map[bool]string{true: "http-01", false: "tls-alpn-01"}[tc.http01]
			if !strings.Contains(h.log.String(), want) {
				t.Errorf("the log names no %s challenge:\n%s", want, h.log.String())
			}
			if !h.m.Settled() {
				t.Error("Settled is false with every name's certificate obtained")
			}
		})
	}
}

func TestShortLivedCertificatesAreRenewedInTheBackground(t *testing.T) {
	// 20-second certificates renewed in the last 70% of their life: a renewal about 6 s after issuance.
	h := newHarness(t, harnessOptions{http01: true, tlsalpn01: true, validity: 20 * time.Second, ratio: 0.7})
	if _, err := h.m.SetNames([]string{"renew.switchyard.test"}); err != nil {
		t.Fatal(err)
	}
	first := h.waitStatus(t, "renew.switchyard.test", func(s Status) bool { return s.State == "valid" })
	roots := h.pebble.IssuingRoots(t)
	_, leaf1 := h.get(t, "renew.switchyard.test", roots)
	second := h.waitStatus(t, "renew.switchyard.test", func(s Status) bool { return s.ValidUntil != nil && s.ValidUntil.After(*first.ValidUntil) })
	_, leaf2 := h.get(t, "renew.switchyard.test", roots)
	if leaf2.SerialNumber.Cmp(leaf1.SerialNumber) == 0 || !leaf2.NotAfter.Equal(*second.ValidUntil) {
		t.Errorf("after the renewal the same certificate is served (serial %v, until %v; status until %v)", leaf2.SerialNumber, leaf2.NotAfter, second.ValidUntil)
	}
	if n := h.pebble.Issued(); n < 2 {
		t.Errorf("pebble issued %d certificates, want the first and its renewal", n)
	}
}

func TestAFailingNameIsReportedWhileTheOthersAreServed(t *testing.T) {
	h := newHarness(t, harnessOptions{http01: true, tlsalpn01: true, unresolvable: []string{"nowhere.switchyard.test"}})
	if _, err := h.m.SetNames([]string{"nowhere.switchyard.test", "ok.switchyard.test"}); err != nil {
		t.Fatal(err)
	}
	bad := h.waitStatus(t, "nowhere.switchyard.test", func(s Status) bool { return s.State == "failed" })
	if bad.Failures < 1 || bad.LastErrorAt == nil || !strings.Contains(bad.LastError, "nowhere.switchyard.test") ||
		!strings.Contains(bad.LastError, "urn:ietf:params:acme:error:") {
		t.Errorf("failed status %+v: want the failure count, its time and the CA's problem document naming the name", bad)
	}
	h.waitStatus(t, "ok.switchyard.test", func(s Status) bool { return s.State == "valid" })
	if body, _ := h.get(t, "ok.switchyard.test", h.pebble.IssuingRoots(t)); body != "hello ok.switchyard.test" {
		t.Errorf("the good name answered %q", body)
	}
	if !h.m.Settled() {
		t.Error("Settled is false although every name had its first attempt")
	}
	log := h.log.String()
	if !strings.Contains(log, "certificate could not be obtained; retrying with backoff") || !strings.Contains(log, "name=nowhere.switchyard.test") {
		t.Errorf("the failure is not logged with the name:\n%s", log)
	}
}

func TestStaticCertificateTakesTheNamesItCovers(t *testing.T) {
	h := newHarness(t, harnessOptions{http01: true})
	static := selfSigned(t, "*.static.switchyard.test")
	if err := h.m.SetStatic(static); err != nil {
		t.Fatal(err)
	}
	fresh, err := h.m.SetNames([]string{"a.static.switchyard.test", "dyn.switchyard.test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fresh) != 1 || fresh[0] != "dyn.switchyard.test" {
		t.Fatalf("names handed to ACME: %v, want only dyn.switchyard.test", fresh)
	}
	h.waitStatus(t, "dyn.switchyard.test", func(s Status) bool { return s.State == "valid" })
	st := h.waitStatus(t, "a.static.switchyard.test", func(s Status) bool { return true })
	if st.Source != "static" || st.State != "valid" {
		t.Errorf("static name status %+v", st)
	}
	staticRoots := x509.NewCertPool()
	staticRoots.AddCert(static.Leaf)
	if _, leaf := h.get(t, "a.static.switchyard.test", staticRoots); leaf.Subject.CommonName != "*.static.switchyard.test" {
		t.Errorf("static name served %v", leaf.Subject)
	}
	if _, leaf := h.get(t, "dyn.switchyard.test", h.pebble.IssuingRoots(t)); leaf.DNSNames[0] != "dyn.switchyard.test" {
		t.Errorf("ACME name served %v", leaf.DNSNames)
	}
	if n := h.pebble.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1 (the static name is not ordered)", n)
	}
}

// selfSigned is a static certificate for name (a wildcard allowed), its Leaf set.
func selfSigned(t *testing.T, name string) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
