package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/internal/idlepark"
)

func TestParkIdleIsOffWhereItMustBe(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		on   bool
	}{
		{"the default parks on Linux", map[string]string{}, idlepark.Supported},
		{"GATEWAY_IDLE_PARK_AFTER=0 turns it off", map[string]string{"GATEWAY_IDLE_PARK_AFTER": "0"}, false},
		{"a TLS listener never parks", map[string]string{"GATEWAY_TLS_CERT": "c.pem", "GATEWAY_TLS_KEY": "k.pem"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Defaults()
			if v, ok := tt.env["GATEWAY_IDLE_PARK_AFTER"]; ok {
				d, _ := time.ParseDuration(v + "s")
				cfg.IdleParkAfter = config.Duration(d)
			}
			cfg.TLSCert = tt.env["GATEWAY_TLS_CERT"]
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			srv := Server(cfg, http.NotFoundHandler(), slog.New(slog.DiscardHandler))
			got, pl := ParkIdle(cfg, srv, ln, slog.New(slog.DiscardHandler))
			defer got.Close()
			if (pl != nil) != tt.on || (got != ln) == !tt.on || (srv.ConnState != nil) != tt.on {
				t.Fatalf("parking on: %v, want %v", pl != nil, tt.on)
			}
		})
	}
}

func TestAParkedClientConnectionIsReusedThroughTheGateway(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer ws.CloseNow()
			for {
				typ, msg, err := ws.Read(r.Context())
				if err != nil {
					return
				}
				ws.Write(r.Context(), typ, msg)
			}
		}
		fmt.Fprintf(w, "app %s", r.URL.Path)
	}))
	defer app.Close()
	cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": app.URL, "GATEWAY_IDLE_PARK_AFTER": "20ms"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := Server(cfg, g.Handler, logger)
	ln, pl := ParkIdle(cfg, srv, LimitListener(cfg, raw, logger, nil), logger)
	if pl == nil {
		t.Skip("idle connection parking is not supported here")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	defer func() {
		srv.Close()
		<-done
	}()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	// A WebSocket through the gateway stays with its handler (hijacked): never parked.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+base[len("http"):]+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	var reused []bool
	for i := range 3 {
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) }}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", fmt.Sprintf("%s/p%d", base, i), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("app /p%d", i); string(body) != want {
			t.Fatalf("got %q, want %q", body, want)
		}
		deadline := time.Now().Add(10 * time.Second)
		for pl.ParkedTotal() != uint64(i+1) || pl.Parked() != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("the client connection was not parked (parked %d, total %d)", pl.Parked(), pl.ParkedTotal())
			}
			time.Sleep(time.Millisecond)
		}
	}
	if fmt.Sprint(reused) != "[false true true]" {
		t.Fatalf("connection reuse %v, want one connection for all three requests", reused)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.Read(ctx); err != nil || string(msg) != "still here" {
		t.Fatalf("WebSocket echo %q, %v", msg, err)
	}
}
