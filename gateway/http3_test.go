package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// h3Gateway is a built gateway served as the binary serves it with TLS: HTTPS through NewFront (with
// AltSvc) and HTTP/3 through NewHTTP3 on the same port number.
type h3Gateway struct {
	addr  string // TCP and UDP
	roots *x509.CertPool
	h3    *HTTP3
	front *Front
	done  chan struct{}
}

func startH3(t *testing.T, env map[string]string) *h3Gateway {
	t.Helper()
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	cert, roots := testCert(t)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	h3, err := NewHTTP3(cfg, g.Handler, udp, tlsConf, logger)
	if err != nil {
		t.Fatal(err)
	}
	front := NewFront(cfg, h3.AltSvc(g.Handler), ln, logger, FrontOptions{TLSConfig: tlsConf})
	s := &h3Gateway{addr: ln.Addr().String(), roots: roots, h3: h3, front: front, done: make(chan struct{}, 2)}
	go func() { front.Serve(); s.done <- struct{}{} }()
	go func() { h3.Serve(); s.done <- struct{}{} }()
	t.Cleanup(func() {
		front.Server.Close()
		h3.Close()
		<-s.done
		<-s.done
	})
	return s
}

// client speaks HTTP/3 (h3) or HTTP/1.1 and HTTP/2 over TLS (tcp) to the gateway.
func (s *h3Gateway) client(h3 bool) *http.Client {
	tlsConf := &tls.Config{RootCAs: s.roots, ServerName: "localhost"}
	if h3 {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http3.Transport{TLSClientConfig: tlsConf}}
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}}
}

func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestHTTP3ServesTheSameRoutesCascadeAndAdvertisesItself(t *testing.T) {
	primary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/new" {
			fmt.Fprint(w, "primary")
			return
		}
		io.Copy(io.Discard, r.Body)
		http.NotFound(w, r) // passes the request on, body included
	}))
	defer primary.Close()
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "legacy %s %s body=%s proto=%s", r.Method, r.URL.Path, b, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer legacy.Close()
	s := startH3(t, map[string]string{
		"GATEWAY_PRIMARY": primary.URL, "GATEWAY_DELEGATES": legacy.URL,
		"GATEWAY_ROUTES": "/denied/=status:403",
	})

	// Over HTTP/2 the answer advertises HTTP/3 on the same port.
	resp, err := s.client(false).Get("https://" + s.addr + "/new")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(s.addr)
	if got := resp.Header.Get("Alt-Svc"); !strings.HasPrefix(got, `h3=":`+port+`"`) || resp.ProtoMajor != 2 {
		t.Errorf("HTTPS answer: %s, Alt-Svc %q; want HTTP/2 advertising h3 on port %s", resp.Proto, got, port)
	}

	c := s.client(true)
	for _, tc := range []struct {
		name, method, path, body, want string
		status                         int
	}{
		{"the primary answers what it has", "GET", "/new", "", "primary", 200},
		{"a POST the primary passes on reaches the delegate with its body", "POST", "/old", "a=1", "legacy POST /old body=a=1 proto=https", 200},
		{"a route answers", "GET", "/denied/x", "", "", 403},
	} {
		req, _ := http.NewRequest(tc.method, "https://"+s.addr+tc.path, strings.NewReader(tc.body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 3 || resp.StatusCode != tc.status || tc.want != "" && string(b) != tc.want {
			t.Errorf("%s: %s %d %q; want HTTP/3 %d %q", tc.name, resp.Proto, resp.StatusCode, b, tc.status, tc.want)
		}
		if resp.Header.Get("Alt-Svc") != "" {
			t.Errorf("%s: an HTTP/3 answer advertises HTTP/3 again", tc.name)
		}
	}
}

func TestHTTP3ConnectionLimitRefusesTheConnectionPastIt(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer app.Close()
	s := startH3(t, map[string]string{"GATEWAY_PRIMARY": app.URL, "GATEWAY_MAX_CONNS": "1"})
	first := s.client(true)
	resp, err := first.Get("https://" + s.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the first connection stays open (idle, pooled by its client)
	_, err = s.client(true).Get("https://" + s.addr + "/")
	var appErr *quic.ApplicationError
	if !errors.As(err, &appErr) || appErr.ErrorCode != h3ExcessiveLoad {
		t.Fatalf("second connection past GATEWAY_MAX_CONNS=1: %v; want closed with H3_EXCESSIVE_LOAD", err)
	}
	first.Transport.(*http3.Transport).Close() // the slot is freed once the first connection is gone
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err = s.client(true).Get("https://" + s.addr + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection admitted after the first closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the server learns of the close asynchronously
	}
}

func TestHTTP3ShutdownLetsARequestInFlightFinish(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/slow" {
			fmt.Fprint(w, "quick")
			return
		}
		close(started)
		<-release
		fmt.Fprint(w, "finished")
	}))
	defer app.Close()
	s := startH3(t, map[string]string{"GATEWAY_PRIMARY": app.URL})
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := s.client(true).Get("https://" + s.addr + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { shut <- s.h3.Shutdown(ctx) }()
	// Once new connections are refused the shutdown runs; the request in flight must keep it waiting.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := s.client(true)
		c.Timeout = time.Second
		resp, err := c.Get("https://" + s.addr + "/new")
		c.Transport.(*http3.Transport).Close()
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("new HTTP/3 connections still served 5s after Shutdown began")
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a request was in flight", err)
	default:
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "finished" {
		t.Errorf("request in flight during Shutdown: %q, %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
