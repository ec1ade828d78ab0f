package adversarial

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
)

// startH3Gateway serves a gateway over HTTP/3 with gateway.NewHTTP3 (the binary's HTTP/3 side) on a
// loopback UDP port, and returns the address and a client trusting its certificate.
func startH3Gateway(t *testing.T, env map[string]string) (addr string, c *http.Client) {
	t.Helper()
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h3, err := gateway.NewHTTP3(cfg, g.Handler, udp, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}, logger)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); h3.Serve() }()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}
	t.Cleanup(func() {
		tr.Close()
		h3.Close()
		<-done
		g.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return udp.LocalAddr().String(), &http.Client{Timeout: ioTimeout, Transport: tr}
}

// echoApp answers every request with what it received, as JSON.
type echoed struct {
	Path   string      `json:"path"`
	Header http.Header `json:"header"`
}

func echoApp(t *testing.T) string {
	t.Helper()
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		json.NewEncoder(w).Encode(echoed{Path: r.URL.EscapedPath(), Header: r.Header})
	}))
	t.Cleanup(app.Close)
	return app.URL
}

// TestHTTP3FrontDoorMatchesHTTP1: every request below gets the same answer over HTTP/3 as over
// HTTP/1.1 - refused where HTTP/1 refuses it, routed on the same canonical path, with the same untrusted
// headers removed before the app sees it.
func TestHTTP3FrontDoorMatchesHTTP1(t *testing.T) {
	env := map[string]string{
		"GATEWAY_PRIMARY":       echoApp(t),
		"GATEWAY_ROUTES":        "/admin/=status:403",
		"GATEWAY_MAX_BODY_SIZE": "1KiB",
	}
	h1Addr, _ := startGateway(t, env)
	h3Addr, h3Client := startH3Gateway(t, env)
	h1Client := &http.Client{Timeout: ioTimeout}

	type answer struct {
		status int
		app    *echoed // what the app received (nil when it received nothing)
	}
	send := func(c *http.Client, scheme, addr, method, rawPath string, header http.Header, body string) (answer, error) {
		req, err := http.NewRequest(method, scheme+"://"+addr+"/", strings.NewReader(body))
		if err != nil {
			return answer{}, err
		}
		req.URL = &url.URL{Scheme: scheme, Host: addr, Opaque: rawPath}
		req.Host = "localhost"
		for k, vs := range header {
			req.Header[k] = vs
		}
		resp, err := c.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		a := answer{status: resp.StatusCode}
		var e echoed
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode == 200 && json.Unmarshal(b, &e) == nil {
			a.app = &e
		}
		return a, nil
	}

	for _, tc := range []struct {
		name   string
		method string
		path   string
		header http.Header
		body   string
		check  func(a answer) string // "" when the answer is right
	}{
		{name: "an encoded slash is refused", method: "GET", path: "/api%2Fsecret",
			check: func(a answer) string { return expect(a.status == 400, "400") }},
		{name: "an encoded dot segment is refused", method: "GET", path: "/%2e%2e/admin/",
			check: func(a answer) string { return expect(a.status == 400, "400") }},
		{name: "an encoded NUL is refused", method: "GET", path: "/a%00b",
			check: func(a answer) string { return expect(a.status == 400, "400") }},
		{name: "a dot segment cannot walk around the /admin/ route", method: "GET", path: "/public/../admin/users",
			check: func(a answer) string { return expect(a.status == 403, "403 from the /admin/ route") }},
		{name: "a dot and a double slash cannot walk around the /admin/ route", method: "GET", path: "/.//admin/users",
			check: func(a answer) string { return expect(a.status == 403, "403 from the /admin/ route") }},
		{name: "a declared body over GATEWAY_MAX_BODY_SIZE is refused", method: "POST", path: "/upload", body: strings.Repeat("x", 2048),
			check: func(a answer) string { return expect(a.status == 413, "413") }},
		{name: "forwarding headers from an untrusted client do not reach the app", method: "GET", path: "/whoami",
			header: http.Header{"X-Forwarded-For": {"6.6.6.6"}, "Forwarded": {"for=6.6.6.6"}, "X-Real-Ip": {"6.6.6.6"}, "X-Forwarded-Host": {"evil.example"}},
			check: func(a answer) string {
				if a.app == nil {
					return "the app answers"
				}
				for k, vs := range a.app.Header {
					for _, v := range vs {
						if strings.Contains(v, "6.6.6.6") || strings.Contains(v, "evil.example") {
							return "no spoofed value reaches the app (" + k + ": " + v + ")"
						}
					}
				}
				return ""
			}},
		{name: "a header name with an underscore does not reach the app", method: "GET", path: "/x", header: http.Header{"X_forwarded_for": {"6.6.6.6"}},
			check: func(a answer) string {
				return expect(a.app != nil && a.app.Header.Get("X_forwarded_for") == "", "the app answers without the field")
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range []struct {
				proto, scheme, addr string
				c                   *http.Client
			}{{"HTTP/1.1", "http", h1Addr, h1Client}, {"HTTP/3", "https", h3Addr, h3Client}} {
				a, err := send(p.c, p.scheme, p.addr, tc.method, tc.path, tc.header, tc.body)
				if err != nil {
					t.Errorf("%s: %v", p.proto, err)
					continue
				}
				if msg := tc.check(a); msg != "" {
					t.Errorf("%s: status %d, app saw %+v; want %s", p.proto, a.status, a.app, msg)
				}
			}
		})
	}
}

func expect(ok bool, what string) string {
	if ok {
		return ""
	}
	return what
}
