package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// proc is a running gateway binary whose log is read continuously (so a busy access log never blocks it).
type proc struct {
	cmd         *exec.Cmd
	addr, admin string
	lines       chan string
	seen        []string // every line waitFor read, for sawOrWait
}

func startGateway(t *testing.T, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append([]string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_ADMIN_ADDR=127.0.0.1:0"}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &proc{cmd: cmd, lines: make(chan string, 1<<16)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	field := func(line string) string {
		i := strings.Index(line, "addr=")
		return strings.Fields(line[i+len("addr="):])[0]
	}
	for p.addr == "" {
		line := p.waitFor(t, "listening")
		if strings.Contains(line, "admin listening") {
			p.admin = field(line)
		} else {
			p.addr = field(line)
		}
	}
	return p
}

// waitFor reads the log until a line contains every one of subs and returns it. The deadline only
// guards against a hung test.
func (p *proc) waitFor(t *testing.T, subs ...string) string {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("gateway log ended without %q; its log:\n%s", subs, strings.Join(p.seen, "\n"))
			}
			p.seen = append(p.seen, line)
			all := true
			for _, s := range subs {
				all = all && strings.Contains(line, s)
			}
			if all {
				return line
			}
		case <-deadline:
			t.Fatalf("no log line with %q within a minute", subs)
		}
	}
}

// replaceFile writes data next to path and renames it over path, as editors and Kubernetes do.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func getBody(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestConfigSwapsLoseNoRequestAndKeepWebSockets(t *testing.T) {
	answer := func(s string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) }))
	}
	a, b := answer("A"), answer("B")
	defer a.Close()
	defer b.Close()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	defer echo.Close()

	dir := t.TempDir()
	file := filepath.Join(dir, "gateway.yaml")
	configFor := func(app string) []byte {
		return fmt.Appendf(nil, "routes:\n  - pattern: /ws/\n    app: %s\n  - pattern: /swap/\n    app: %s\n", echo.URL, app)
	}
	replaceFile(t, file, configFor(a.URL))
	p := startGateway(t, "GATEWAY_CONFIG="+file)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+p.addr+"/ws/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	echoes := func(msg string) {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("WebSocket write: %v", err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("WebSocket echo %q, %v; want %q", got, err, msg)
		}
	}
	echoes("before the swaps")

	// Continuous, bounded traffic while the configuration is swapped.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, failed atomic.Int64
	var firstFailure atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for i := 0; i < 50000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				status, body, err := getBody(c, "http://"+p.addr+"/swap/x")
				if err != nil || status != 200 || (body != "A" && body != "B") {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("status %d body %q err %v", status, body, err))
					continue
				}
				served.Add(1)
			}
		}()
	}

	const swaps = 20
	for i := 1; i <= swaps; i++ {
		app := a.URL
		if i%2 == 1 {
			app = b.URL
		}
		replaceFile(t, file, configFor(app))
		p.waitFor(t, "configuration reloaded", fmt.Sprintf("generation=%d ", i+1))
	}
	// SIGHUP reloads even when nothing changed.
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "configuration reloaded", `trigger=SIGHUP`, fmt.Sprintf("generation=%d ", swaps+2))
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed during %d swaps; first: %v", failed.Load(), failed.Load()+served.Load(), swaps, firstFailure.Load())
	}
	t.Logf("%d requests served during %d swaps", served.Load(), swaps)
	if served.Load() == 0 {
		t.Errorf("no request was served during the swaps")
	}
	if _, body, err := getBody(http.DefaultClient, "http://"+p.addr+"/swap/x"); err != nil || body != "A" {
		t.Errorf("after the last swap /swap/ answered %q, %v; want A", body, err)
	}
	echoes("after the swaps")

	// An invalid configuration is logged and the running one kept.
	replaceFile(t, file, []byte("routes:\n  - pattern: /swap/\n    app: gopher://nowhere\n"))
	p.waitFor(t, "configuration reload failed", "gopher")
	if _, body, err := getBody(http.DefaultClient, "http://"+p.addr+"/swap/x"); err != nil || body != "A" {
		t.Errorf("after an invalid configuration /swap/ answered %q, %v; want A", body, err)
	}
	echoes("after an invalid configuration")
	// One with problems in the settings and in an app: the line names every one, as `gateway check` does.
	replaceFile(t, file, []byte("upstream_timeout: 5ss\nroutes:\n  - pattern: /swap/\n    app: "+a.URL+"?strip_prefx=true\n"))
	p.waitFor(t, "configuration reload failed", `invalid duration \"5ss\"`, `unknown option \"strip_prefx\"`)

	// The admin listener reads the current gateway.
	for _, tc := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/healthz", 200, []string{"ok"}},
		{"/readyz", 200, []string{"ready"}},
		{"/api/routes", 200, []string{`"pattern": "/swap/"`, a.URL}},
		{"/api/upstreams", 200, []string{a.URL, echo.URL, `"healthy": true`}},
		{"/metrics", 200, []string{`switchyard_requests_total{app="` + strings.TrimPrefix(a.URL, "http://") + `",method="GET",protocol="http1",route="/swap/",status_class="2xx"}`, "switchyard_upstream_instance_healthy", "go_goroutines", "switchyard_migration_requests_total"}},
		{"/api/nothing", 404, nil},
	} {
		status, body, err := getBody(http.DefaultClient, "http://"+p.admin+tc.path)
		if err != nil || status != tc.status {
			t.Errorf("admin %s = %d, %v; want %d", tc.path, status, err, tc.status)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("admin %s lacks %q:\n%.2000s", tc.path, w, body)
			}
		}
	}
}

// selfSigned writes a fresh self-signed certificate for 127.0.0.1 named cn to certFile and keyFile, and
// returns a pool trusting it.
func selfSigned(t *testing.T, cn, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	return writeSelfSigned(t, certFile, keyFile, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}})
}

// writeSelfSigned completes tmpl (names set) into a fresh self-signed CA certificate valid for an hour
// around now, writes it and its key to certFile and keyFile, and returns a pool trusting it.
func writeSelfSigned(t *testing.T, certFile, keyFile string, tmpl *x509.Certificate) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	replaceFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestTLSServesHTTP2AndReloadsTheCertificate(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app saw %s, forwarded proto %s", r.Proto, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer app.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	pool := selfSigned(t, "first", certFile, keyFile)
	p := startGateway(t, "GATEWAY_PRIMARY="+app.URL, "GATEWAY_TLS_CERT="+certFile, "GATEWAY_TLS_KEY="+keyFile)

	get := func(pool *x509.CertPool) (*http.Response, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + p.addr + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get(pool)
	if resp.ProtoMajor != 2 {
		t.Errorf("client got HTTP/%d.%d, want HTTP/2", resp.ProtoMajor, resp.ProtoMinor)
	}
	if want := "forwarded proto https"; !strings.Contains(body, want) {
		t.Errorf("body %q lacks %q", body, want)
	}
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "first" {
		t.Errorf("certificate %q, want first", cn)
	}

	// New files: the watcher reloads them (a half-written pair fails to load and is retried).
	pool2 := selfSigned(t, "second", certFile, keyFile)
	p.waitFor(t, "configuration reloaded", "generation=2 ")
	resp, _ = get(pool2)
	if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "second" || resp.ProtoMajor != 2 {
		t.Errorf("after reload: certificate %q over HTTP/%d, want second over HTTP/2", cn, resp.ProtoMajor)
	}
}

func TestTLSNeedsBothFiles(t *testing.T) {
	var out, errb strings.Builder
	code := run([]string{"check"}, []string{"GATEWAY_TLS_CERT=/nonexistent.crt"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "GATEWAY_TLS_KEY") {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	code = run([]string{"serve"}, []string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_ADMIN_ADDR=", "GATEWAY_TLS_CERT=/nonexistent.crt", "GATEWAY_TLS_KEY=/nonexistent.key"}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), "nonexistent.crt") {
		t.Fatalf("serve with missing files: exit %d, stderr %s", code, errb.String())
	}
}
