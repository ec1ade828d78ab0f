package testpeer

import (
	"os"
	"testing"
	"time"
)

// UWSGIPlugin is the Debian path of the python3 plugin that StartUWSGI loads.
const UWSGIPlugin = "/usr/lib/uwsgi/plugins/python3_plugin.so"

const uwsgiHint = "apt-get install uwsgi-core uwsgi-plugin-python3"

// UWSGI configures one uWSGI instance for StartUWSGI.
type UWSGI struct {
	// Socket is the listener kind: "uwsgi" (--socket, the default), "scgi" (--scgi-socket) or "http"
	// (--http-socket).
	Socket string
	// TCP listens on a free 127.0.0.1 port instead of a unix socket.
	TCP bool
	// Dir is uWSGI's working directory (--chdir and the process's cwd); the test's temp dir when "".
	Dir string
	// App are the arguments naming the app: {"--wsgi-file", "/abs/app.py"} or
	// {"--python-path", dir, "--module", "project.wsgi:application"}.
	App []string
	// Args are further uWSGI options, appended last.
	Args []string
	// Env is added to the peer's minimal environment (DJANGO_SETTINGS_MODULE=...).
	Env []string
}

// UWSGIPeer is a running uWSGI.
type UWSGIPeer struct {
	*Process
	// Network is "unix" or "tcp"; Addr the socket path or host:port.
	Network, Addr string
}

// NeedUWSGI returns the uwsgi binary, or ends the test (see Need) when it or the python3 plugin is absent.
// Debian's python3 plugin runs /usr/bin/python3 with its site packages (python3-django, python3-flask).
func NeedUWSGI(t testing.TB) string {
	t.Helper()
	bin := Need(t, uwsgiHint, "uwsgi")[0]
	if _, err := os.Stat(UWSGIPlugin); err != nil {
		Missing(t, UWSGIPlugin+" not found; "+uwsgiHint)
	}
	return bin
}

// StartUWSGI runs uWSGI with the python3 plugin, one process without a master (the default; Debian's getopt refuses --master=false), --die-on-term (Debian's 2.0.21
// reloads on SIGTERM otherwise), a 64 KiB --buffer-size (the default 4096 refuses ordinary large headers)
// and cfg's app, and waits until it accepts connections. It is stopped when the test ends.
func StartUWSGI(t testing.TB, cfg UWSGI) *UWSGIPeer {
	t.Helper()
	bin := NeedUWSGI(t)
	if len(cfg.App) == 0 {
		t.Fatal("StartUWSGI: cfg.App names no app (--wsgi-file or --module)")
	}
	dir := cfg.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	p := &UWSGIPeer{Network: "unix"}
	if cfg.TCP {
		p.Network, p.Addr = "tcp", FreePort(t)
	} else {
		p.Addr = SocketPath(t, "uwsgi.sock")
	}
	flag := "--socket"
	switch cfg.Socket {
	case "", "uwsgi":
	case "scgi":
		flag = "--scgi-socket"
	case "http":
		flag = "--http-socket"
	default:
		t.Fatalf("StartUWSGI: unknown socket kind %q", cfg.Socket)
	}
	args := []string{
		"--plugin", "python3", "--die-on-term", "--processes", "1",
		"--buffer-size", "65535", "--need-app", "--chdir", dir, flag, p.Addr,
	}
	args = append(args, cfg.App...)
	args = append(args, cfg.Args...)
	p.Process = Start(t, dir, cfg.Env, bin, args...)
	WaitDial(t, p.Process, p.Network, p.Addr, 15*time.Second)
	return p
}
