package e2e

import (
	"log/slog"
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
	srv := httptest.NewUnstartedServer(g.Handler)
	srv.Config = gateway.Server(cfg, g.Handler, logger)
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		g.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return srv, g, logs
}
