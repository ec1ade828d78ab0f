// Package pebbletest runs Pebble, Let's Encrypt's ACME test server, on loopback for tests: a real ACME
// server that validates every challenge over the network (never PEBBLE_VA_ALWAYS_VALID), with its
// challenge ports pointed at the gateway under test and a small DNS server of its own that resolves the
// test's names to 127.0.0.1 (or to nothing, for a name that must fail).
//
// The pebble binary is $SWITCHYARD_PEBBLE, else pebble in $(go env GOPATH)/bin (.ci/run installs it
// there; not any pebble on PATH, a name other programs use), else built once with `go install` of
// Version and kept in the user's cache directory (switchyard/pebble-VERSION). Without it, and unable to
// build it, a test skips, or fails when SWITCHYARD_REQUIRE_PEERS=1.
package pebbletest

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Version is the Pebble release the tests run.
const Version = "github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3"

// Options configure a Server.
type Options struct {
	// HTTPPort and TLSPort are where Pebble validates HTTP-01 and TLS-ALPN-01 challenges (on 127.0.0.1).
	HTTPPort, TLSPort int
	// Validity is the lifetime of the certificates it issues (0: 90 days).
	Validity time.Duration
	// Unresolvable names get no address from the DNS server (NXDOMAIN): their validation fails.
	Unresolvable []string
	// OCSPResponderURL, when set, is written into the certificates Pebble issues (their OCSP server).
	// Pebble itself answers no OCSP: the test runs the responder (Issuer gives it the signing key). The
	// CA's keys are then RSA, the only kind Pebble's management API hands out (ECDSA otherwise).
	OCSPResponderURL string
}

// Server is a running Pebble.
type Server struct {
	// Directory is the ACME directory URL.
	Directory string
	// RootFile is the PEM file of the root Pebble's own HTTPS is signed by (GATEWAY_ACME_CA_ROOT).
	RootFile string
	mgmt     string
	rootPool *x509.CertPool

	mu   sync.Mutex
	logs []string
}

var (
	buildOnce sync.Once
	built     string
	buildErr  error
)

// Binary returns the pebble program, building it the first time when it is not installed.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("SWITCHYARD_PEBBLE"); p != "" {
			built = p
			return
		}
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			p := filepath.Join(strings.TrimSpace(string(out)), "bin", "pebble")
			if _, err := os.Stat(p); err == nil {
				built = p
				return
			}
		}
		// Built once per machine into the user's cache directory (the build in a temporary directory of its
		// own, then renamed into place, so test binaries building at the same time do not collide).
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		cached := filepath.Join(cache, "switchyard", "pebble-"+Version[strings.LastIndex(Version, "@")+1:])
		if _, err := os.Stat(cached); err == nil {
			built = cached
			return
		}
		if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp(filepath.Dir(cached), "build-")
		if err != nil {
			buildErr = err
			return
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "install", Version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go install %s: %v\n%s", Version, err, out)
			return
		}
		if err := os.Rename(filepath.Join(dir, "pebble"), cached); err != nil {
			buildErr = err
			return
		}
		built = cached
	})
	if built == "" {
		if os.Getenv("SWITCHYARD_REQUIRE_PEERS") == "1" {
			t.Fatalf("pebble (ACME test server) not available: %v", buildErr)
		}
		t.Skipf("pebble (ACME test server) not available: %v; install it: go install %s", buildErr, Version)
	}
	return built
}

// FreePort returns a loopback TCP port nothing listens on now. Pebble's addresses and challenge ports
// are fixed in its configuration before anything starts, so the tests reserve ports this way.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct loopback TCP ports nothing listens on now, none of them in exclude. Every
// listener is held until all are chosen: ports picked one at a time can come back equal, since the
// kernel may hand out a port it just freed again (seen: Pebble's ACME and management addresses given one
// port, and Pebble failing to bind the second). The ports are below Linux's default ephemeral range
// (32768 and up), which the kernel never hands out by itself: between their choice and their use by
// another process (Pebble, the gateway binary), a port from that range could be taken by any test's
// outgoing connection or listener on port 0 (seen: the gateway binary exiting at its bind).
func FreePorts(t testing.TB, n int, exclude ...int) []int {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > n+1000 {
			t.Fatalf("no %d free loopback ports in 20000-31999 outside %v", n, exclude)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12000)))
		if err != nil {
			continue // taken: another
		}
		held = append(held, ln)
		if p := ln.Addr().(*net.TCPAddr).Port; !slices.Contains(exclude, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// Start runs Pebble and its DNS server until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{}

	// Pebble's own HTTPS: a throwaway root and a leaf for 127.0.0.1.
	rootPEM, certPEM, keyPEM := serverCert(t)
	s.RootFile = filepath.Join(dir, "root.pem")
	for name, b := range map[string][]byte{"root.pem": rootPEM, "cert.pem": certPEM, "key.pem": keyPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.rootPool = x509.NewCertPool()
	s.rootPool.AppendCertsFromPEM(rootPEM)

	dnsAddr := startDNS(t, opts.Unresolvable)
	validity := int64(opts.Validity / time.Second)
	if validity == 0 {
		validity = 90 * 24 * 3600
	}
	ports := FreePorts(t, 2, opts.HTTPPort, opts.TLSPort)
	listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.mgmt = fmt.Sprintf("127.0.0.1:%d", ports[1])
	keyAlg := "ecdsa"
	if opts.OCSPResponderURL != "" {
		keyAlg = "rsa"
	}
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress":           listen,
		"managementListenAddress": s.mgmt,
		"certificate":             filepath.Join(dir, "cert.pem"),
		"privateKey":              filepath.Join(dir, "key.pem"),
		"httpPort":                opts.HTTPPort,
		"tlsPort":                 opts.TLSPort,
		"ocspResponderURL":        opts.OCSPResponderURL,
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":            keyAlg,
		"profiles": map[string]any{"default": map[string]any{
			"description": "test", "validityPeriod": validity,
		}},
	}}
	b, _ := json.Marshal(conf)
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", confFile, "-dnsserver", dnsAddr)
	// No artificial validation delay, no injected bad nonces, a fresh validation for every order.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); <-done })
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.logs = append(s.logs, sc.Text())
			s.mu.Unlock()
		}
	}()
	s.Directory = "https://" + listen + "/dir"
	c := s.client()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.Get(s.Directory)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not serve %s within 20s: %v\n%s", s.Directory, err, s.Log())
		}
		time.Sleep(20 * time.Millisecond) // waiting for another process to bind: nothing to wait on
	}
	return s
}

func (s *Server) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.rootPool}}}
}

// Log is Pebble's output so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.logs, "\n")
}

// Issued counts the certificates Pebble issued so far.
func (s *Server) Issued() int {
	return strings.Count(s.Log(), "Issued certificate serial")
}

// IssuingRoots are the roots of the certificates Pebble issues (a new one every run).
func (s *Server) IssuingRoots(t testing.TB) *x509.CertPool {
	t.Helper()
	resp, err := s.client().Get("https://" + s.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble's /roots/0: no PEM certificate: %q", b)
	}
	return pool
}

// Issuer is the intermediate certificate that signs the certificates Pebble issues, and its key (from
// the management API, which has it only when Options.OCSPResponderURL made the CA's keys RSA), for a
// test's own OCSP responder.
func (s *Server) Issuer(t testing.TB) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	get := func(path string) *pem.Block {
		resp, err := s.client().Get("https://" + s.mgmt + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		block, _ := pem.Decode(b)
		if resp.StatusCode != http.StatusOK || block == nil {
			t.Fatalf("pebble's %s: %s, no PEM block: %q", path, resp.Status, b)
		}
		return block
	}
	cert, err := x509.ParseCertificate(get("/intermediates/0").Bytes)
	if err != nil {
		t.Fatalf("pebble's /intermediates/0: %v", err)
	}
	block := get("/intermediate-keys/0")
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	signer, ok := key.(crypto.Signer)
	if err != nil || !ok {
		t.Fatalf("pebble's /intermediate-keys/0 (%s): %T %v", block.Type, key, err)
	}
	return cert, signer
}

// startDNS serves A 127.0.0.1 for every name except the unresolvable ones (NXDOMAIN), and empty
// answers for other types, over TCP (Pebble's resolver client speaks TCP).
func startDNS(t testing.TB, unresolvable []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]bool{}
	for _, n := range unresolvable {
		bad[dns.Fqdn(strings.ToLower(n))] = true
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			name := strings.ToLower(question.Name)
			if bad[name] {
				m.Rcode = dns.RcodeNameError
				continue
			}
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// serverCert makes a root and a leaf for 127.0.0.1 and localhost, PEM encoded.
func serverCert(t testing.TB) (rootPEM, certPEM, keyPEM []byte) {
	t.Helper()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	root := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest root"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "pebble"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, root, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(leafKey)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
