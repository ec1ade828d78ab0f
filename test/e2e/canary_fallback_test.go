package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// shopFlask is a plain Flask app as its tutorial writes one: nothing in it knows about the gateway.
const shopFlask = `import hashlib

from flask import Flask, request

app = Flask(__name__)


@app.route("/")
def index():
    return "flask home"


@app.route("/shop/")
def shop():
    return "flask shop"


@app.route("/shop/cart", methods=["POST"])
def cart():
    body = request.get_data()
    return "flask cart %s %d" % (hashlib.sha256(body).hexdigest(), len(body))
`

// startPlainFlask runs shopFlask under gunicorn on a unix socket and returns the socket's path.
func startPlainFlask(t *testing.T) string {
	t.Helper()
	testpeer.FlaskApp(t) // ends the test unless Debian's Python imports Flask
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(shopFlask), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := testpeer.SocketPath(t, "flask.sock")
	testpeer.StartGunicorn(t, dir, "app:app", "unix:"+sock)
	return sock
}

// freePort returns a loopback address nothing listens on: the new app not started yet.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// send sends req with the default client and returns the status and body.
func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, body := do(t, http.DefaultClient, req)
	return resp.StatusCode, body
}

// TestCanaryWithTheNewAppDownIsServedByAStockFlaskApp: a plain Flask app under gunicorn is the old app of a
// canary route whose new app is not running (nothing listens on its port, or its unix socket does not
// exist): every client, on either side, gets Flask's answer, a POST's body reaches Flask whole, and the
// report counts the requests of the new side as fallen back.
func TestCanaryWithTheNewAppDownIsServedByAStockFlaskApp(t *testing.T) {
	flask := startPlainFlask(t)
	old := url.QueryEscape("unix://" + flask + "?name=flask")
	for _, newApp := range []string{"http://" + freePort(t), "unix://" + filepath.Join(t.TempDir(), "new.sock")} {
		t.Run(newApp[:strings.Index(newApp, ":")], func(t *testing.T) {
			g, front := migrationGateway(t, map[string]string{
				"GATEWAY_ROUTES": "/shop/=" + newApp + "?name=shop&stage=canary&canary=50&sticky=header:X-User&old=" + old,
			})
			split := delegate.Split{Percent: 50, Salt: "/shop/"}
			onNew := 0
			for i := range 20 {
				user := fmt.Sprintf("user-%d", i)
				req, _ := http.NewRequest("GET", front+"/shop/", nil)
				req.Header.Set("X-User", user)
				if status, body := send(t, req); status != 200 || body != "flask shop" {
					t.Fatalf("%s: got %d %q, want Flask's page", user, status, body)
				}
				if split.SideOf(user) == delegate.SideNew {
					onNew++
				}
			}
			if onNew == 0 {
				t.Fatal("no client on the new side: the case tests nothing")
			}

			body := make([]byte, 300<<10)
			rand.Read(body)
			user := ""
			for i := 0; user == "" && i < 100; i++ {
				if id := fmt.Sprintf("buyer-%d", i); split.SideOf(id) == delegate.SideNew {
					user = id
				}
			}
			req, _ := http.NewRequest("POST", front+"/shop/cart", bytes.NewReader(body))
			req.Header.Set("X-User", user)
			req.Header.Set("Content-Type", "application/octet-stream")
			want := fmt.Sprintf("flask cart %x %d", sha256.Sum256(body), len(body))
			if status, got := send(t, req); status != 200 || got != want {
				t.Fatalf("POST: got %d %q, want 200 %q", status, got, want)
			}

			rt := reportRoute(t, migrationReport(t, g), "/shop/")
			if rt.FellBack != uint64(onNew+1) || rt.Requests != 21 {
				t.Fatalf("fell_back %d of %d requests, want %d of 21", rt.FellBack, rt.Requests, onNew+1)
			}
		})
	}
}

// TestPrimaryStageWithTheNewAppDownIsServedByAStockFlaskApp: the primary/delegate pair at GATEWAY_STAGE
// primary, the new app (the primary) not running: the site stays Flask's.
func TestPrimaryStageWithTheNewAppDownIsServedByAStockFlaskApp(t *testing.T) {
	flask := startPlainFlask(t)
	g, front := migrationGateway(t, map[string]string{
		"GATEWAY_PRIMARY":   "http://" + freePort(t) + "?name=new",
		"GATEWAY_DELEGATES": "unix://" + flask + "?name=flask",
		"GATEWAY_STAGE":     "primary",
	})
	req, _ := http.NewRequest("GET", front+"/", nil)
	if status, body := send(t, req); status != 200 || body != "flask home" {
		t.Fatalf("got %d %q, want Flask's home page", status, body)
	}
	if rt := reportRoute(t, migrationReport(t, g), "*"); rt.FellBack != 1 {
		t.Fatalf("fell_back %d, want 1", rt.FellBack)
	}
}
