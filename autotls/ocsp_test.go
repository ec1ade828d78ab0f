package autotls

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// ocspResponder is an OCSP responder for Pebble's issuer (Pebble answers no OCSP itself): it answers
// "good", signed by the issuer, for every certificate asked about, and records the serials.
type ocspResponder struct {
	mu     sync.Mutex
	issuer *x509.Certificate
	key    crypto.Signer
	asked  []*big.Int
}

func (o *ocspResponder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "want a POSTed OCSP request", http.StatusBadRequest)
		return
	}
	req, err := ocsp.ParseRequest(b)
	o.mu.Lock()
	issuer, key := o.issuer, o.key
	if err == nil {
		o.asked = append(o.asked, req.SerialNumber)
	}
	o.mu.Unlock()
	if err != nil || issuer == nil {
		w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	now := time.Now()
	resp, err := ocsp.CreateResponse(issuer, issuer, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	w.Write(resp)
}

func (o *ocspResponder) serials() []*big.Int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]*big.Int(nil), o.asked...)
}

// TestAnOCSPResponseIsStapledWhenTheCANamesAResponder: when the issued certificate names an OCSP
// responder, the Manager fetches the response when it obtains the certificate and staples it to the
// handshakes; the client gets the responder's signed "good" for the very certificate it is served.
func TestAnOCSPResponseIsStapledWhenTheCANamesAResponder(t *testing.T) {
	resp := &ocspResponder{}
	srv := httptest.NewServer(resp)
	defer srv.Close()
	h := newHarness(t, harnessOptions{http01: true, ocspURL: srv.URL})
	issuer, key := h.pebble.Issuer(t)
	resp.mu.Lock()
	resp.issuer, resp.key = issuer, key
	resp.mu.Unlock()

	if _, err := h.m.SetNames([]string{"ocsp.switchyard.test"}); err != nil {
		t.Fatal(err)
	}
	if s := h.waitStatus(t, "ocsp.switchyard.test", func(s Status) bool { return s.State == "valid" || s.State == "failed" }); s.State != "valid" {
		t.Fatalf("status %+v, want a valid certificate", s)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", h.tlsLn.Addr().String(),
		&tls.Config{RootCAs: h.pebble.IssuingRoots(t), ServerName: "ocsp.switchyard.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.HandshakeContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := conn.ConnectionState()
	leaf := st.PeerCertificates[0]
	if len(leaf.OCSPServer) != 1 || leaf.OCSPServer[0] != srv.URL {
		t.Fatalf("the served certificate names OCSP servers %v, want %s", leaf.OCSPServer, srv.URL)
	}
	if len(st.OCSPResponse) == 0 {
		t.Fatalf("no stapled OCSP response; the responder was asked about %v", resp.serials())
	}
	parsed, err := ocsp.ParseResponseForCert(st.OCSPResponse, leaf, issuer)
	if err != nil {
		t.Fatalf("the stapled response does not verify for the served certificate: %v", err)
	}
	if parsed.Status != ocsp.Good || parsed.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Errorf("stapled: status %d for serial %v; want good (%d) for %v", parsed.Status, parsed.SerialNumber, ocsp.Good, leaf.SerialNumber)
	}
}
