package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/quic-go/quic-go/http3"

	"github.com/switchyard/switchyard/autotls"
	"github.com/switchyard/switchyard/internal/pebbletest"
)

// acmeSite is a Pebble whose challenge ports are the gateway's (fixed before either starts) and an app
// that answers with the host and path it was asked for.
type acmeSite struct {
	pebble          *pebbletest.Server
	httpsAddr, http string // the gateway's listeners, on 127.0.0.1
	app             string
}

func newACMESite(t *testing.T, unresolvable ...string) *acmeSite {
	t.Helper()
	pebbletest.Binary(t)
	s := &acmeSite{}
	ports := pebbletest.FreePorts(t, 2) // distinct: two FreePort calls can return one port twice
	httpsPort, httpPort := ports[0], ports[1]
	s.httpsAddr, s.http = fmt.Sprintf("127.0.0.1:%d", httpsPort), fmt.Sprintf("127.0.0.1:%d", httpPort)
	s.pebble = pebbletest.Start(t, pebbletest.Options{HTTPPort: httpPort, TLSPort: httpsPort, Unresolvable: unresolvable})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s %s proto=%s", r.Host, r.URL.RequestURI(), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(app.Close)
	s.app = app.URL
	return s
}

// env is the gateway's ACME configuration with storage in dir.
func (s *acmeSite) env(dir string, more ...string) []string {
	return append([]string{
		"GATEWAY_ACME=true",
		"GATEWAY_ACME_CA=" + s.pebble.Directory,
		"GATEWAY_ACME_CA_ROOT=" + s.pebble.RootFile,
		"GATEWAY_ACME_EMAIL=ops@switchyard.test",
		"GATEWAY_ACME_STORAGE=" + dir,
	}, more...)
}

// client reaches every name at addr, trusting roots.
func client(addr string, roots *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
}

// certificates reads /api/certificates until every listed name is in a final state for the test
// (valid or failed); the deadline only guards a hung test.
func certificates(t *testing.T, admin string, want map[string]string) map[string]autotls.Status {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last []autotls.Status
	for range tick.C {
		resp, err := http.Get("http://" + admin + "/api/certificates")
		if err != nil {
			t.Fatal(err)
		}
		last = nil
		err = json.NewDecoder(resp.Body).Decode(&last)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]autotls.Status{}
		for _, s := range last {
			got[s.Name] = s
		}
		done := len(got) == len(want)
		for n, st := range want {
			done = done && got[n].State == st
		}
		if done {
			return got
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Fatalf("certificates did not reach %v within 45s: %+v", want, last)
	return nil
}

func servedLeaf(t *testing.T, c *http.Client, url string) (*x509.Certificate, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.TLS.PeerCertificates[0], string(b)
}

func TestACMECertificatesForTheRoutesRedirectsAndARestartFromStorage(t *testing.T) {
	site := newACMESite(t, "nowhere.switchyard.test")
	storage := t.TempDir()
	staticCert, staticKey := filepath.Join(t.TempDir(), "static.pem"), filepath.Join(t.TempDir(), "static-key.pem")
	staticRoots := staticFor(t, "static.switchyard.test", staticCert, staticKey)
	env := site.env(storage,
		"GATEWAY_ADDR="+site.httpsAddr, "GATEWAY_HTTP_ADDR="+site.http,
		"GATEWAY_TLS_CERT="+staticCert, "GATEWAY_TLS_KEY="+staticKey,
		"GATEWAY_ROUTES=shop.switchyard.test/="+site.app+
			",plain.switchyard.test/="+site.app+"?https_redirect=false"+
			",static.switchyard.test/="+site.app+
			",nowhere.switchyard.test/="+site.app)
	gw := startGateway(t, env...)
	certs := certificates(t, gw.admin, map[string]string{
		"shop.switchyard.test": "valid", "plain.switchyard.test": "valid", "static.switchyard.test": "valid", "nowhere.switchyard.test": "failed"})
	if s := certs["static.switchyard.test"]; s.Source != "static" {
		t.Errorf("static.switchyard.test comes from %q, want the static certificate", s.Source)
	}
	if s := certs["nowhere.switchyard.test"]; !strings.Contains(s.LastError, "urn:ietf:params:acme:error:") || s.Failures < 1 {
		t.Errorf("the failing name reports %+v, want the CA's problem and the failure count", s)
	}
	roots := site.pebble.IssuingRoots(t)
	https := client(site.httpsAddr, roots)
	leaf, body := servedLeaf(t, https, "https://shop.switchyard.test/cart?id=1")
	if body != "app shop.switchyard.test /cart?id=1 proto=https" || leaf.DNSNames[0] != "shop.switchyard.test" {
		t.Errorf("https://shop.switchyard.test/cart?id=1: %q with a certificate for %v", body, leaf.DNSNames)
	}
	if _, body := servedLeaf(t, client(site.httpsAddr, staticRoots), "https://static.switchyard.test/"); !strings.HasPrefix(body, "app static.switchyard.test /") {
		t.Errorf("static name over the static certificate: %q", body)
	}

	// Plain HTTP: a redirect keeping path and query, except where the route opted out.
	plain := client(site.http, nil)
	for _, tc := range []struct {
		name, url, location, body string
		status                    int
	}{
		{"a route is redirected with its path and query", "http://shop.switchyard.test/cart?id=1&x=%2Fy", "https://shop.switchyard.test:" + port(site.httpsAddr) + "/cart?id=1&x=%2Fy", "", 308},
		{"a host no route claims is redirected too", "http://other.switchyard.test/", "https://other.switchyard.test:" + port(site.httpsAddr) + "/", "", 308},
		{"https_redirect=false serves the route on plain HTTP", "http://plain.switchyard.test/p?q=1", "", "app plain.switchyard.test /p?q=1 proto=http", 200},
	} {
		resp, err := plain.Get(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location || tc.body != "" && string(b) != tc.body {
			t.Errorf("%s: %d Location %q body %q; want %d %q %q", tc.name, resp.StatusCode, resp.Header.Get("Location"), b, tc.status, tc.location, tc.body)
		}
	}

	resp, err := http.Get("http://" + gw.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(ready), "certificate shop.switchyard.test (acme): valid, valid until") ||
		!strings.Contains(string(ready), "certificate nowhere.switchyard.test (acme): failed") {
		t.Errorf("/readyz: %d\n%s", resp.StatusCode, ready)
	}
	issued := site.pebble.Issued()
	if issued != 2 {
		t.Errorf("pebble issued %d certificates, want 2 (shop and plain; static is not ordered, nowhere fails)", issued)
	}

	// A restart serves the stored certificates without ordering again.
	gw.cmd.Process.Signal(syscall.SIGTERM)
	gw.waitFor(t, "stopped")
	gw.cmd.Wait()
	gw = startGateway(t, env...)
	certificates(t, gw.admin, map[string]string{
		"shop.switchyard.test": "valid", "plain.switchyard.test": "valid", "static.switchyard.test": "valid", "nowhere.switchyard.test": "failed"})
	again, _ := servedLeaf(t, client(site.httpsAddr, roots), "https://shop.switchyard.test/")
	if again.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("after a restart another certificate is served (serial %v, was %v)", again.SerialNumber, leaf.SerialNumber)
	}
	if n := site.pebble.Issued(); n != issued {
		t.Errorf("the restart ordered again: pebble issued %d certificates, %d before", n, issued)
	}
}

func TestACMEOverTLSALPNWithoutAPlainHTTPListener(t *testing.T) {
	site := newACMESite(t)
	// The test holds the plain-HTTP port itself for the gateway's whole life: a gateway that tried to
	// listen there (or to answer HTTP-01 on it) could not start or order. Dialling the port afterwards
	// proved nothing, since any other process on the machine may take a free port meanwhile.
	held, err := net.Listen("tcp", site.http)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	gw := startGateway(t, site.env(t.TempDir(), "GATEWAY_ADDR="+site.httpsAddr, "GATEWAY_HTTP_ADDR=",
		"GATEWAY_ROUTES=alpn.switchyard.test/="+site.app)...)
	certificates(t, gw.admin, map[string]string{"alpn.switchyard.test": "valid"})
	if _, body := servedLeaf(t, client(site.httpsAddr, site.pebble.IssuingRoots(t)), "https://alpn.switchyard.test/"); body != "app alpn.switchyard.test / proto=https" {
		t.Errorf("body %q", body)
	}
}

func TestTwoGatewaysSharingStorageOrderACertificateOnce(t *testing.T) {
	site := newACMESite(t)
	storage := t.TempDir()
	routes := "GATEWAY_ROUTES=shared.switchyard.test/=" + site.app
	// The test holds the name's issuance lock in the shared storage until both gateways wait for it, so
	// that they contend for the same order whatever the timing of their starts.
	lock := &certmagic.FileStorage{Path: storage}
	const key = "issue_cert_shared.switchyard.test"
	if err := lock.Lock(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	// The CA validates on the first gateway's ports: when the second holds the lock and orders, the first
	// answers its challenge from the shared storage, as a load balancer in front of replicas would have it.
	first := startGateway(t, site.env(storage, "GATEWAY_ADDR="+site.httpsAddr, "GATEWAY_HTTP_ADDR="+site.http, routes)...)
	second := startGateway(t, site.env(storage, "GATEWAY_HTTP_ADDR=127.0.0.1:0", routes)...)
	first.sawOrWait(t, "acquiring lock", "shared.switchyard.test")
	second.sawOrWait(t, "acquiring lock", "shared.switchyard.test")
	if err := lock.Unlock(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	certificates(t, first.admin, map[string]string{"shared.switchyard.test": "valid"})
	certificates(t, second.admin, map[string]string{"shared.switchyard.test": "valid"})
	roots := site.pebble.IssuingRoots(t)
	a, _ := servedLeaf(t, client(first.addr, roots), "https://shared.switchyard.test/")
	b, _ := servedLeaf(t, client(second.addr, roots), "https://shared.switchyard.test/")
	if a.SerialNumber.Cmp(b.SerialNumber) != 0 {
		t.Errorf("the two gateways serve different certificates (%v, %v)", a.SerialNumber, b.SerialNumber)
	}
	if n := site.pebble.Issued(); n != 1 {
		t.Errorf("pebble issued %d certificates for one name and two gateways, want 1", n)
	}
}

func TestCheckValidatesTheACMESettingsWithoutTheCA(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"check"}, []string{
		"GATEWAY_ACME=true", "GATEWAY_ACME_CA=https://127.0.0.1:1/dir", "GATEWAY_ACME_STORAGE=/var/lib/gw/acme",
		"GATEWAY_ACME_NAMES=extra.example.com",
		"GATEWAY_ROUTES=shop.example.com/=http://127.0.0.1:3000,*.apps.example.com/=http://127.0.0.1:3001,old.example.com/=http://127.0.0.1:3002?https_redirect=false",
	}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"https on :443, plain http on :80",
		"acme directory https://127.0.0.1:1/dir, contact (none), storage /var/lib/gw/acme",
		"certificates from ACME: shop.example.com old.example.com extra.example.com",
		"warning: route host *.apps.example.com: a wildcard certificate needs the DNS-01 challenge",
		"configuration ok",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}

	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"a wildcard name", []string{"GATEWAY_ACME=true", "GATEWAY_ACME_NAMES=*.example.com"}, `GATEWAY_ACME_NAMES="*.example.com": "*.example.com": a wildcard certificate needs the DNS-01 challenge`},
		{"no name at all", []string{"GATEWAY_ACME=true", "GATEWAY_ROUTES=/=http://127.0.0.1:3000"}, "GATEWAY_ACME=true: no name to get a certificate for"},
		{"a directory over http", []string{"GATEWAY_ACME=true", "GATEWAY_ACME_NAMES=a.example.com", "GATEWAY_ACME_CA=http://ca.example.com/dir"}, "an ACME directory is served over https"},
		{"a bad e-mail", []string{"GATEWAY_ACME=true", "GATEWAY_ACME_NAMES=a.example.com", "GATEWAY_ACME_EMAIL=ops"}, `GATEWAY_ACME_EMAIL="ops": expected an e-mail address`},
		{"ACME settings with ACME off", []string{"GATEWAY_ACME_EMAIL=ops@example.com"}, "GATEWAY_ACME_EMAIL is set but ACME is off: set GATEWAY_ACME=true"},
		{"a plain HTTP listener without HTTPS", []string{"GATEWAY_HTTP_ADDR=:80"}, `GATEWAY_HTTP_ADDR=":80": the plain HTTP listener redirects to HTTPS, which is off`},
		{"https_redirect without a plain HTTP listener", []string{"GATEWAY_TLS_CERT=/x.pem", "GATEWAY_TLS_KEY=/x.key", "GATEWAY_ROUTES=/=http://127.0.0.1:3000?https_redirect=false"}, "option https_redirect=false: there is no plain HTTP listener (GATEWAY_HTTP_ADDR)"},
		{"an unreadable CA root", []string{"GATEWAY_ACME=true", "GATEWAY_ACME_NAMES=a.example.com", "GATEWAY_ACME_CA_ROOT=/nonexistent/root.pem"}, `GATEWAY_ACME_CA_ROOT="/nonexistent/root.pem": open /nonexistent/root.pem`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"check"}, tc.env, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant %q", code, errb.String(), tc.want)
			}
		})
	}
}

// sawOrWait returns at once when a line waitFor already read holds every one of subs, else waits for one.
func (p *proc) sawOrWait(t *testing.T, subs ...string) {
	t.Helper()
	for _, line := range p.seen {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			return
		}
	}
	p.waitFor(t, subs...)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// staticFor writes a certificate for name and its key, and returns a pool trusting it.
func staticFor(t *testing.T, name, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	return writeSelfSigned(t, certFile, keyFile, &x509.Certificate{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name}})
}

func TestHTTP3NextToHTTPSAndOffBySetting(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app %s", r.Header.Get("X-Forwarded-Proto"))
	}))
	defer app.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := selfSigned(t, "gw", certFile, keyFile)
	for _, tc := range []struct {
		name string
		env  []string
		h3   bool
	}{
		{"on by default with TLS", nil, true},
		{"GATEWAY_HTTP3=false turns it off", []string{"GATEWAY_HTTP3=false"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := startGateway(t, append([]string{"GATEWAY_PRIMARY=" + app.URL, "GATEWAY_TLS_CERT=" + certFile, "GATEWAY_TLS_KEY=" + keyFile}, tc.env...)...)
			https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}}
			resp, err := https.Get("https://" + gw.addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Alt-Svc"); (got == `h3=":`+port(gw.addr)+`"; ma=2592000`) != tc.h3 {
				t.Errorf("Alt-Svc %q (HTTP/3 on: %v)", got, tc.h3)
			}
			tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
			defer tr.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+gw.addr+"/", nil)
			resp, err = tr.RoundTrip(req)
			if !tc.h3 {
				if err == nil {
					resp.Body.Close()
					t.Error("HTTP/3 answered with GATEWAY_HTTP3=false")
				}
				return
			}
			if err != nil {
				t.Fatalf("HTTP/3: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != "HTTP/3.0" || string(b) != "app https" {
				t.Errorf("HTTP/3 answer %s %q", resp.Proto, b)
			}
			_, metrics, err := getBody(http.DefaultClient, "http://"+gw.admin+"/metrics")
			if err != nil || !strings.Contains(metrics, `method="GET",protocol="http3",route="*",status_class="2xx"} 1`) ||
				!strings.Contains(metrics, `method="GET",protocol="http2",route="*",status_class="2xx"} 1`) {
				t.Errorf("/metrics does not count one request per protocol (%v):\n%s", err, metrics)
			}
		})
	}
}

func TestAReloadOrdersTheCertificatesOfNewRouteHosts(t *testing.T) {
	site := newACMESite(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "gw.yaml")
	conf := func(hosts ...string) []byte {
		var b strings.Builder
		fmt.Fprintf(&b, "http_addr: %s\nacme: true\nacme_ca: %s\nacme_ca_root: %s\nacme_storage: %s\nroutes:\n",
			site.http, site.pebble.Directory, site.pebble.RootFile, filepath.Join(dir, "acme"))
		for _, h := range hosts {
			fmt.Fprintf(&b, "  - pattern: %s/\n    app: %s\n", h, site.app)
		}
		return []byte(b.String())
	}
	replaceFile(t, file, conf("one.switchyard.test"))
	gw := startGateway(t, "GATEWAY_CONFIG="+file, "GATEWAY_ADDR="+site.httpsAddr) // startGateway sets one too

	certificates(t, gw.admin, map[string]string{"one.switchyard.test": "valid"})
	replaceFile(t, file, conf("one.switchyard.test", "two.switchyard.test"))
	gw.waitFor(t, "configuration reloaded")
	certificates(t, gw.admin, map[string]string{"one.switchyard.test": "valid", "two.switchyard.test": "valid"})
	if _, body := servedLeaf(t, client(gw.addr, site.pebble.IssuingRoots(t)), "https://two.switchyard.test/x"); body != "app two.switchyard.test /x proto=https" {
		t.Errorf("the new host after the reload: %q", body)
	}
}
