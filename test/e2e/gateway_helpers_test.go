package e2e

import (
	"log/slog"
	"net"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
)

// startGateway builds a gateway from GATEWAY_* variables as the binary does and serves it on loopback
// until the test ends; the gateway's log is printed when the test fails.
func startGateway(t *testing.T, env map[string]string) (*httptest.Server, *gateway.Gateway, *logBuf) {
	t.Helper()
	srv, g, logs, _ := startGatewayFront(t, env)
	return srv, g, logs
}

// startGatewayFront is startGateway that also returns the listener stack (its fast lane's counters).
func startGatewayFront(t *testing.T, env map[string]string) (*httptest.Server, *gateway.Gateway, *logBuf, *gateway.Front) {
	t.Helper()
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuf{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv, front := frontServer(t, cfg, g, logger)
	t.Cleanup(func() {
		srv.Close()
		g.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return srv, g, logs, front
}

// frontServer serves g through the binary's listener stack and server (gateway.NewFront), started as an
// httptest.Server for its URL and its cleanup.
func frontServer(t *testing.T, cfg config.Config, g *gateway.Gateway, logger *slog.Logger) (*httptest.Server, *gateway.Front) {
	t.Helper()
	srv := httptest.NewUnstartedServer(g.Handler)
	srv.Listener.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := gateway.NewFront(cfg, g.Handler, ln, logger, gateway.FrontOptions{})
	srv.Listener, srv.Config = front.Listener(), front.Server
	srv.Start()
	return srv, front
}
