package adversarial

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// wsgiEcho is a WSGI app answering the environ keys a mount-point or scheme spoof would change.
const wsgiEcho = `import json
KEYS = ["SCRIPT_NAME", "PATH_INFO", "wsgi.url_scheme", "REMOTE_ADDR", "HTTP_X_FORWARDED_FOR",
        "HTTP_X_SCRIPT_NAME", "HTTP_SCRIPT_NAME", "HTTP_X_FORWARDED_PREFIX", "HTTP_PROXY"]
def app(environ, start_response):
    body = json.dumps({k: environ.get(k) for k in KEYS}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
`

// gunicornSpoof is what a client sends to move a gunicorn app's mount point and scheme.
const gunicornSpoof = "SCRIPT_NAME: /evil\r\nScript-Name: /evil\r\nX-Script-Name: /evil\r\nX-Forwarded-Proto: https\r\n" +
	"X-Forwarded-Prefix: /evil\r\nProxy: http://evil.test:3128\r\n"

// TestGunicornMountPointSpoofing runs Debian's gunicorn, which takes SCRIPT_NAME and the URL scheme from
// request headers of the peers it trusts (every peer on a unix socket, the gateway included), behind the
// gateway on a unix socket. The control request straight to gunicorn shows the spoof works there; through
// the gateway the app must see its real mount and scheme.
func TestGunicornMountPointSpoofing(t *testing.T) {
	testpeer.Need(t, "apt-get install gunicorn", "gunicorn")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echoapp.py"), []byte(wsgiEcho), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := testpeer.SocketPath(t, "g.sock")
	testpeer.StartGunicorn(t, dir, "echoapp:app", "unix:"+sock)

	direct := unixGet(t, sock, "GET /evil/x HTTP/1.1\r\nHost: gw.test\r\n"+gunicornSpoof+"Connection: close\r\n\r\n")
	if direct["SCRIPT_NAME"] == "/evil" || direct["wsgi.url_scheme"] == "https" {
		t.Logf("control: straight to gunicorn the spoof works (SCRIPT_NAME=%v, scheme=%v)", direct["SCRIPT_NAME"], direct["wsgi.url_scheme"])
	} else {
		t.Logf("control: this gunicorn ignored the spoof on its own (%v)", direct)
	}

	rec := newRecorder(t, "primary")
	addr, _ := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(),
		"GATEWAY_ROUTES": "/py/=unix://" + sock + "?strip_prefix=true,/raw/=unix://" + sock})
	for _, tc := range []struct {
		name, path, script, pathInfo, prefix string
	}{
		{"gunicorn SCRIPT_NAME header spoofing: a strip_prefix app keeps SCRIPT_NAME empty and its prefix from the gateway", "/py/x", "", "/x", "/py"},
		{"gunicorn SCRIPT_NAME header spoofing: an app given the whole path keeps SCRIPT_NAME empty", "/raw/x", "", "/raw/x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, _ := exchange(t, addr, "GET "+tc.path+" HTTP/1.1\r\n"+host+gunicornSpoof+"Connection: close\r\n\r\n", 1)
			if len(rs) != 1 || rs[0].Status != 200 {
				t.Fatalf("statuses %v %q", statuses(rs), bodies(rs))
			}
			var env map[string]any
			if err := json.Unmarshal([]byte(rs[0].Body), &env); err != nil {
				t.Fatalf("%v: %q", err, rs[0].Body)
			}
			if env["SCRIPT_NAME"] != tc.script || env["PATH_INFO"] != tc.pathInfo || env["wsgi.url_scheme"] != "http" {
				t.Errorf("SCRIPT_NAME=%v PATH_INFO=%v scheme=%v, want %q %q http", env["SCRIPT_NAME"], env["PATH_INFO"], env["wsgi.url_scheme"], tc.script, tc.pathInfo)
			}
			var prefix any
			if tc.prefix != "" {
				prefix = tc.prefix
			}
			if env["HTTP_X_FORWARDED_PREFIX"] != prefix {
				t.Errorf("X-Forwarded-Prefix %v, want %v", env["HTTP_X_FORWARDED_PREFIX"], prefix)
			}
			for _, k := range []string{"HTTP_X_SCRIPT_NAME", "HTTP_SCRIPT_NAME", "HTTP_PROXY"} {
				if env[k] != nil {
					t.Errorf("%s=%v reached the app", k, env[k])
				}
			}
		})
	}
}

// unixGet sends raw on the unix socket and decodes the JSON answer.
func unixGet(t *testing.T, sock, raw string) map[string]any {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	c.Write([]byte(raw))
	rs, _ := readReplies(t, c, bufio.NewReader(c), 1)
	if len(rs) != 1 {
		t.Fatal("no answer from gunicorn")
	}
	var env map[string]any
	if err := json.Unmarshal([]byte(rs[0].Body), &env); err != nil {
		t.Fatalf("%v: %q", err, rs[0].Body)
	}
	return env
}
