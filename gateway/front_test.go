package gateway

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/config"
)

// TestFrontCollectorCountsWhatTheStackDoes: the numbers of the listener stack reach the caller's registry.
func TestFrontCollectorCountsWhatTheStackDoes(t *testing.T) {
	cfg, err := config.Load(map[string]string{"GATEWAY_MAX_CONNS": "1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFront(cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ln, slog.New(slog.DiscardHandler), FrontOptions{})
	done := make(chan struct{})
	go func() { defer close(done); f.Serve() }()
	defer func() { f.Server.Close(); <-done }()
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.Collector())

	first, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(10 * time.Second))
	first.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	if _, err := http.ReadResponse(bufio.NewReader(first), nil); err != nil { // admitted and served: open
		t.Fatal(err)
	}
	second, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(10 * time.Second))
	second.Write([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))    // the limiter reads the head, then answers
	resp, err := http.ReadResponse(bufio.NewReader(second), nil) // past GATEWAY_MAX_CONNS: a raw 503
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("second connection: %v %v", resp, err)
	}
	got := map[string]float64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			name := fam.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	if got["switchyard_connections_open{listener=http}"] != 1 || got["switchyard_connections_refused_total{listener=http}{reason=total}"] != 1 {
		t.Fatalf("gathered %v; want 1 open and 1 refused", got)
	}
}

// TestFrontCollectorExportsRefusalsBeforeTheFirst: both refusal reasons are series from the start, at 0,
// so a dashboard or an alert on them sees the listener before anything was refused.
func TestFrontCollectorExportsRefusalsBeforeTheFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFront(config.Defaults(), http.NotFoundHandler(), ln, slog.New(slog.DiscardHandler), FrontOptions{})
	defer ln.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(f.Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, fam := range fams {
		if fam.GetName() != "switchyard_connections_refused_total" {
			continue
		}
		for _, m := range fam.GetMetric() {
			var reason, listener string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "reason":
					reason = l.GetValue()
				case "listener":
					listener = l.GetValue()
				}
			}
			if listener != "http" || m.GetCounter().GetValue() != 0 {
				t.Errorf("reason %q: listener %q, value %v; want listener http at 0", reason, listener, m.GetCounter().GetValue())
			}
			got[reason] = true
		}
	}
	if !got["total"] || !got["per_client"] || len(got) != 2 {
		t.Fatalf("refusal reasons exported before any refusal: %v; want total and per_client", got)
	}
}
