package gateway

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/metrics"
)

// BenchmarkProxiedGET sends small GETs over one keep-alive connection through the production front
// (NewFront: head scan, connection limits, idle parking, net/http), the gateway's layers (metrics as
// cmd/gateway wires them, access log off) and the HTTP proxy to a Go backend on loopback. Everything runs
// in this process, so a request's cost here includes the client's and the backend's: "direct" sends the
// same requests to the backend without the gateway, and the gateway's share is a sub-benchmark's minus
// direct's. "park-off" is the same gateway with GATEWAY_IDLE_PARK_AFTER=0: the idle-park hook's cost per
// request is park-on's minus park-off's; "lane" is park-on with GATEWAY_FAST_LANE=true (on Linux the fast
// lane serves every request, on its event loops), "lane-goroutines" the same with GATEWAY_FAST_LANE_LOOPS=-1. Count instructions with bench/layers.sh 'ProxiedGET'.
func BenchmarkProxiedGET(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/plain"}
		_, _ = io.WriteString(w, "0123456789012345678901234567890123456789012345678901234567890123") // 64 bytes, as bench/backend's /small
	}))
	b.Cleanup(backend.Close)
	b.Run("direct", func(b *testing.B) { benchGets(b, backend.Listener.Addr().String()) })
	for _, tt := range []struct{ name, park, lane, loops string }{{"park-on", "1s", "false", "0"}, {"park-off", "0", "false", "0"},
		{"lane", "1s", "true", "0"}, {"lane-goroutines", "1s", "true", "-1"}} {
		b.Run(tt.name, func(b *testing.B) {
			logger := slog.New(slog.DiscardHandler)
			cfg, err := config.Load(map[string]string{
				"GATEWAY_PRIMARY":         backend.URL,
				"GATEWAY_IDLE_PARK_AFTER": tt.park,
				"GATEWAY_FAST_LANE":       tt.lane,
				"GATEWAY_FAST_LANE_LOOPS": tt.loops,
			}, nil)
			if err != nil {
				b.Fatal(err)
			}
			m, err := metrics.New(prometheus.NewRegistry(), nil)
			if err != nil {
				b.Fatal(err)
			}
			g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger, Observe: m.Middleware, ObserveMetrics: m})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { g.Close() })
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			f := NewFront(cfg, g.Handler, ln, logger, FrontOptions{})
			go func() { _ = f.Serve() }()
			b.Cleanup(func() { f.Server.Close() })
			benchGets(b, f.Addr().String())
		})
	}
}

// benchGets sends b.N GETs to addr over one keep-alive connection, one at a time.
func benchGets(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET /small HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	br := bufio.NewReader(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
