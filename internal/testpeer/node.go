package testpeer

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// NodeDir returns the Node example directory (ExamplesDir()/node).
func NodeDir() string { return filepath.Join(ExamplesDir(), "node") }

// StartNode runs the Node example (Express + ws: JSON at /, SSE at /events, WebSocket echo at /ws) and
// returns once it accepts connections. socketOrPort is a unix socket path (anything containing a slash),
// a loopback "host:port" (as FreePort returns), or a bare port on 127.0.0.1. The dependencies must have
// been installed (node_modules is not committed); otherwise the test ends through Missing with the npm
// command to run. The process is stopped when the test ends.
func StartNode(t testing.TB, socketOrPort string) *Process {
	t.Helper()
	node := Need(t, "install Node.js 20 (apt-get install nodejs)", "node")[0]
	dir := NodeDir()
	for _, dep := range []string{"express", "ws"} {
		needFile(t, filepath.Join(dir, "node_modules", dep, "package.json"), "run: npm ci --prefix deploy/examples/node")
	}
	var env []string
	network, addr := "tcp", ""
	switch {
	case strings.Contains(socketOrPort, "/"):
		env = []string{"SOCKET=" + socketOrPort}
		network, addr = "unix", socketOrPort
	default:
		host, port, err := net.SplitHostPort(socketOrPort)
		if err != nil {
			host, port = "127.0.0.1", socketOrPort
		}
		env = []string{"HOST=" + host, "PORT=" + port}
		addr = net.JoinHostPort(host, port)
	}
	p := Start(t, dir, env, node, "server.js")
	WaitDial(t, p, network, addr, PeerStartTimeout)
	return p
}
