package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/fastlane"
)

// GATEWAY_FAST_LANE=true in front of a plain Flask app under gunicorn, as docs/performance.md tells a user
// to try it: the lane serves the small requests itself and hands the others (a chunked upload) to
// net/http on the same connection; the app sees no difference either way.
func TestTheFastLaneServesAStockFlaskApp(t *testing.T) {
	if !fastlane.Supported {
		t.Skip("the fast lane runs on Linux only")
	}
	sock := startPlainFlask(t)
	cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": "unix://" + sock, "GATEWAY_FAST_LANE": "true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := gateway.NewFront(cfg, g.Handler, ln, logger, gateway.FrontOptions{})
	if f.Lane == nil {
		t.Fatal("GATEWAY_FAST_LANE=true built no lane")
	}
	done := make(chan struct{})
	go func() { defer close(done); f.Serve() }()
	t.Cleanup(func() {
		f.Server.Close()
		<-done
		g.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	base := "http://" + ln.Addr().String()

	body := bytes.Repeat([]byte("sku-42,"), 100)
	sum := fmt.Sprintf("%x", sha256.Sum256(body))
	chunked, _ := http.NewRequest("POST", base+"/shop/cart", io.MultiReader(bytes.NewReader(body))) // no length: chunked
	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want string
	}{
		{"a GET", func() *http.Request { r, _ := http.NewRequest("GET", base+"/", nil); return r }, "flask home"},
		{"a GET under a path", func() *http.Request { r, _ := http.NewRequest("GET", base+"/shop/", nil); return r }, "flask shop"},
		{"a small POST", func() *http.Request {
			r, _ := http.NewRequest("POST", base+"/shop/cart", bytes.NewReader(body))
			return r
		}, fmt.Sprintf("flask cart %s %d", sum, len(body))},
		{"a chunked POST (handed to net/http)", func() *http.Request { return chunked }, fmt.Sprintf("flask cart %s %d", sum, len(body))},
	} {
		resp, err := http.DefaultClient.Do(tc.req())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != tc.want {
			t.Errorf("%s: %d %q, want 200 %q", tc.name, resp.StatusCode, b, tc.want)
		}
	}
	// gunicorn's answers have a length and a type: the lane's express path writes them itself.
	if f.Lane.Expressed() < 3 {
		t.Errorf("the lane's express path served %d requests; want the three small ones", f.Lane.Expressed())
	}
	// On the lane's event loops (GATEWAY_FAST_LANE_LOOPS, on by default), with no goroutine per connection.
	if f.Lane.Looped() < 3 {
		t.Errorf("the event loops finished %d exchanges; want the three small ones", f.Lane.Looped())
	}
	if f.Lane.Served() < 3 || f.Lane.HandedOff() < 1 {
		t.Errorf("the lane served %d requests and handed off %d connections; want the three small ones served and the chunked upload handed off",
			f.Lane.Served(), f.Lane.HandedOff())
	}
}
