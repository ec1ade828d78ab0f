package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// scrape reads the admin listener's /metrics into series (name with its labels as printed) -> value.
func scrape(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// TestEveryListenerReportsItsConnections: plain HTTP, HTTPS (HTTP/2) and HTTP/3 each report the
// connections open on them and the ones their limits refused, under their own listener label, after real
// connections of each kind.
func TestEveryListenerReportsItsConnections(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "app") }))
	defer app.Close()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	roots := selfSigned(t, "gw", certFile, keyFile)
	gw := startGateway(t, "GATEWAY_PRIMARY="+app.URL, "GATEWAY_TLS_CERT="+certFile, "GATEWAY_TLS_KEY="+keyFile,
		"GATEWAY_HTTP_ADDR=127.0.0.1:0", "GATEWAY_MAX_CONNS=1", "GATEWAY_MAX_CONNS_PER_CLIENT=0")
	gw.sawOrWait(t, "plain http:", "addr=")
	plainAddr := ""
	for _, line := range gw.seen {
		if strings.Contains(line, "plain http:") {
			plainAddr = strings.Fields(line[strings.Index(line, "addr=")+len("addr="):])[0]
		}
	}

	// One connection on each listener, served and kept open.
	plain, err := net.Dial("tcp", plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(plain, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(plain), nil); err != nil || resp.StatusCode != http.StatusPermanentRedirect {
		t.Fatalf("plain HTTP: %v %v; want the redirect to HTTPS", resp, err)
	}
	h2 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer h2.CloseIdleConnections()
	resp, err := (&http.Client{Transport: h2, Timeout: 10 * time.Second}).Get("https://" + gw.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("HTTPS answered over %s; want HTTP/2", resp.Proto)
	}
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer h3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+gw.addr+"/", nil)
	if resp, err = h3.RoundTrip(req); err != nil {
		t.Fatalf("HTTP/3: %v", err)
	}
	resp.Body.Close()

	series := func(name, listener string, labels ...string) string {
		return name + `{` + strings.Join(append([]string{`listener="` + listener + `"`}, labels...), ",") + `}`
	}
	got := scrape(t, gw.admin)
	for _, l := range []string{"http", "https", "http3"} {
		if s := series("switchyard_connections_open", l); got[s] != 1 {
			t.Errorf("%s = %v; want 1 (one connection held open)", s, got[s])
		}
		if s := series("switchyard_connections_refused_total", l, `reason="total"`); got[s] != 0 {
			t.Errorf("%s = %v before any refusal; want 0", s, got[s])
		}
	}
	if _, ok := got[series("switchyard_connections_parked", "http")]; !ok && runtime.GOOS == "linux" {
		t.Error(`no switchyard_connections_parked{listener="http"}: the plain listener parks idle connections on Linux`)
	}

	// A second connection on each listener is past GATEWAY_MAX_CONNS=1: refused, and counted there.
	second, err := net.Dial("tcp", plainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(second, "GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(second), nil); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second plain HTTP connection: %v %v; want the limiter's 503", resp, err)
	}
	h2b := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}
	defer h2b.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: h2b, Timeout: 10 * time.Second}).Get("https://" + gw.addr + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("a second HTTPS connection was served past GATEWAY_MAX_CONNS=1")
	}
	h3b := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	defer h3b.Close()
	req, _ = http.NewRequestWithContext(ctx, "GET", "https://"+gw.addr+"/", nil)
	if resp, err := h3b.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Fatal("a second HTTP/3 connection was served past GATEWAY_MAX_CONNS=1")
	}
	got = scrape(t, gw.admin)
	for _, l := range []string{"http", "https", "http3"} {
		if s := series("switchyard_connections_refused_total", l, `reason="total"`); got[s] != 1 {
			t.Errorf("%s = %v; want 1", s, got[s])
		}
		if s := series("switchyard_connections_open", l); got[s] != 1 {
			t.Errorf("%s = %v after the refusals; want still 1", s, got[s])
		}
	}

	// Closed by the clients, they leave the open counts (each server notices the close on its own time:
	// polled, bounded).
	plain.Close()
	h2.CloseIdleConnections()
	h3.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = scrape(t, gw.admin)
		left := 0.0
		for _, l := range []string{"http", "https", "http3"} {
			left += got[series("switchyard_connections_open", l)]
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections still counted open 30s after the clients closed them: %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
