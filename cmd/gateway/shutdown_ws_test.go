package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoWebSocketApp answers every WebSocket message with itself.
func echoWebSocketApp(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	t.Cleanup(srv.Close)
	return srv
}

func dialEcho(t *testing.T, ctx context.Context, addr string) func(msg string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return func(msg string) *websocket.Conn {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("WebSocket write %q: %v", msg, err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("WebSocket echo %q, %v; want %q", got, err, msg)
		}
		return ws
	}
}

// TestSIGTERMLetsAWebSocketTunnelFinish checks that the drain waits for an upgraded connection, which
// http.Server.Shutdown does not track: the tunnel keeps working after SIGTERM, and the gateway exits 0
// once the client closes it.
func TestSIGTERMLetsAWebSocketTunnelFinish(t *testing.T) {
	app := echoWebSocketApp(t)
	cmd, addr, logs := gatewayProcess(t, "GATEWAY_PRIMARY="+app.URL)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	echo := dialEcho(t, ctx, addr)
	echo("before SIGTERM")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "waiting for upgraded connections")
	ws := echo("after SIGTERM, while draining")
	ws.Close(websocket.StatusNormalClosure, "done")
	waitLog(t, logs, "stopped")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
}

// TestSIGTERMCutsAWebSocketTunnelAtTheShutdownTimeout checks the bound: a tunnel still open when
// GATEWAY_SHUTDOWN_TIMEOUT passes is cut, and the exit status says the drain was not clean.
func TestSIGTERMCutsAWebSocketTunnelAtTheShutdownTimeout(t *testing.T) {
	app := echoWebSocketApp(t)
	cmd, addr, logs := gatewayProcess(t, "GATEWAY_PRIMARY="+app.URL, "GATEWAY_SHUTDOWN_TIMEOUT=500ms")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws := dialEcho(t, ctx, addr)("before SIGTERM")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "fast lane exchanges still open; cutting them")
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("gateway exit %v, want status 1", err)
	}
	if _, _, err := ws.Read(ctx); err == nil {
		t.Fatal("the tunnel still answered after the gateway exited")
	}
}

// TestSIGTERMWaitsForATunnelOfAReplacedConfiguration checks the same for a tunnel opened before a reload:
// its handler runs on the replaced configuration, and the drain still waits for it.
func TestSIGTERMWaitsForATunnelOfAReplacedConfiguration(t *testing.T) {
	app, other := echoWebSocketApp(t), echoWebSocketApp(t)
	file := filepath.Join(t.TempDir(), "gateway.yaml")
	replaceFile(t, file, []byte("primary: "+app.URL+"\n"))
	cmd, addr, logs := gatewayProcess(t, "GATEWAY_CONFIG="+file)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	echo := dialEcho(t, ctx, addr)
	echo("before the reload")
	replaceFile(t, file, []byte("primary: "+other.URL+"\n"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "configuration reloaded")
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "waiting for upgraded connections")
	ws := echo("after SIGTERM, on the replaced configuration")
	ws.Close(websocket.StatusNormalClosure, "done")
	waitLog(t, logs, "stopped")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
}
