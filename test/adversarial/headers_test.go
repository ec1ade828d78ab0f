package adversarial

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/fcgi"
	"strings"
	"sync"
	"testing"
)

// spoofs are the identity, scheme, host and mount-point claims a client may try to make.
const spoofs = "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https\r\n" +
	"X-Forwarded-Prefix: /evil\r\nX-Forwarded-User: admin\r\nForwarded: for=6.6.6.6;proto=https;host=evil.test\r\n" +
	"X-Real-IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nX-Client-IP: 6.6.6.6\r\nCF-Connecting-IP: 6.6.6.6\r\n" +
	"X-Original-URL: /admin\r\nX-Rewrite-URL: /admin\r\nX-Script-Name: /evil\r\nScript-Name: /evil\r\n" +
	"SCRIPT_NAME: /evil\r\nX_Forwarded_For: 6.6.6.6\r\nX-Forwarded_Host: evil.test\r\nProxy: http://evil.test:3128\r\n"

// spoofedNames are the header names (canonical, as the recorder stores them) that must never reach an app
// from an untrusted peer.
var spoofedNames = []string{"Forwarded", "X-Forwarded-Prefix", "X-Forwarded-User", "X-Real-Ip", "True-Client-Ip",
	"X-Client-Ip", "Cf-Connecting-Ip", "X-Original-Url", "X-Rewrite-Url", "X-Script-Name", "Script-Name",
	"Script_name", "X_forwarded_for", "X-Forwarded_host", "Upgrade", "Http2-Settings", "Proxy"}

func TestHeaderTrust(t *testing.T) {
	for _, tc := range []struct {
		name    string
		path    string // "/app/..." is mounted with strip_prefix, anything else goes to the primary
		headers string
		check   func(t *testing.T, r seenRequest)
	}{
		{"spoofed X-Forwarded-For/-Host/-Proto from an untrusted peer are replaced by the gateway's own values", "/x", spoofs,
			func(t *testing.T, r seenRequest) {
				want(t, r, "X-Forwarded-For", "127.0.0.1")
				want(t, r, "X-Forwarded-Host", "gw.test")
				want(t, r, "X-Forwarded-Proto", "http")
			}},
		{"Forwarded, X-Real-IP, True-Client-IP, X-Original-URL and the other identity claims never reach an app", "/x", spoofs,
			func(t *testing.T, r seenRequest) { absent(t, r, spoofedNames...) }},
		{"X-Script-Name, Script-Name and X-Forwarded-Prefix cannot move a strip_prefix app's mount point", "/app/x", spoofs,
			func(t *testing.T, r seenRequest) {
				want(t, r, "X-Forwarded-Prefix", "/app")
				absent(t, r, "X-Script-Name", "Script-Name", "Script_name")
			}},
		{"httpoxy (CVE-2016-5385): the Proxy header never reaches an HTTP app either (WSGI servers put it in the environ as HTTP_PROXY)", "/x",
			"Proxy: http://evil.test:3128\r\n",
			func(t *testing.T, r seenRequest) { absent(t, r, "Proxy") }},
		{"gunicorn SCRIPT_NAME header and other underscore aliases (X_Forwarded_For) are dropped", "/x",
			"SCRIPT_NAME: /evil\r\nX_Forwarded_For: 6.6.6.6\r\nx_real_ip: 6.6.6.6\r\n",
			func(t *testing.T, r seenRequest) {
				for name := range r.Header {
					if strings.Contains(name, "_") {
						t.Errorf("header %s reached the app", name)
					}
				}
				want(t, r, "X-Forwarded-For", "127.0.0.1")
			}},
		{"hop-by-hop header abuse: Connection: X-Forwarded-For cannot remove the gateway's X-Forwarded-For", "/x",
			"Connection: X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto\r\n",
			func(t *testing.T, r seenRequest) {
				want(t, r, "X-Forwarded-For", "127.0.0.1")
				want(t, r, "X-Forwarded-Host", "gw.test")
				want(t, r, "X-Forwarded-Proto", "http")
			}},
		{"hop-by-hop header abuse: Connection: X-Forwarded-Prefix cannot remove a strip_prefix app's mount point", "/app/x",
			"Connection: X-Forwarded-Prefix\r\n",
			func(t *testing.T, r seenRequest) { want(t, r, "X-Forwarded-Prefix", "/app") }},
		{"hop-by-hop header abuse: Connection: X-Request-Id cannot remove the gateway's request id", "/x",
			"Connection: keep-alive, X-Request-Id\r\n",
			func(t *testing.T, r seenRequest) {
				if r.Header.Get("X-Request-Id") == "" {
					t.Errorf("X-Request-Id missing")
				}
			}},
		{"a header the client lists in Connection is hop-by-hop and not forwarded (RFC 9110 7.6.1)", "/x",
			"X-Private: secret\r\nConnection: X-Private\r\n",
			func(t *testing.T, r seenRequest) { absent(t, r, "X-Private") }},
		{"h2c smuggling (Bishop Fox, 2020): Upgrade: h2c and HTTP2-Settings never reach an app", "/x",
			"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
			func(t *testing.T, r seenRequest) {
				absent(t, r, "Upgrade", "Http2-Settings")
				if strings.Contains(strings.ToLower(strings.Join(r.Header.Values("Connection"), ",")), "upgrade") {
					t.Errorf("Connection %q still asks for an upgrade", r.Header.Values("Connection"))
				}
			}},
		{"h2c smuggling: an Upgrade list naming websocket and h2c is not a WebSocket upgrade", "/x",
			"Connection: Upgrade\r\nUpgrade: websocket, h2c\r\n",
			func(t *testing.T, r seenRequest) { absent(t, r, "Upgrade") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, "app")
			addr, stop := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(),
				"GATEWAY_ROUTES": "/app/=" + rec.URL() + "?strip_prefix=true"})
			rs, _ := exchange(t, addr, "GET "+tc.path+" HTTP/1.1\r\n"+host+tc.headers+"\r\n", 1)
			stop()
			reqs, broken := rec.record()
			if len(rs) != 1 || rs[0].Status != 200 {
				t.Fatalf("statuses %v, want 200 (not a 101 switch)", statuses(rs))
			}
			if len(reqs) != 1 || len(broken) > 0 {
				t.Fatalf("backend received %v %q", targets(reqs), broken)
			}
			tc.check(t, reqs[0])
		})
	}
}

func TestTrustedProxyHeadersAreExtendedNotReplaced(t *testing.T) {
	rec := newRecorder(t, "app")
	addr, stop := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(), "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"})
	rs, _ := exchange(t, addr, "GET /x HTTP/1.1\r\n"+host+"X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\n"+
		"X-Real-IP: 203.0.113.9\r\nSCRIPT_NAME: /evil\r\nConnection: X-Forwarded-For\r\n\r\n", 1)
	stop()
	reqs, _ := rec.record()
	if len(rs) != 1 || len(reqs) != 1 {
		t.Fatalf("replies %v, backend %v", statuses(rs), targets(reqs))
	}
	r := reqs[0]
	// The trusted proxy's own Connection option removes its X-Forwarded-For hop (RFC 9110 7.6.1); the
	// gateway still adds the peer it saw.
	want(t, r, "X-Forwarded-For", "127.0.0.1")
	want(t, r, "X-Forwarded-Proto", "https")
	want(t, r, "X-Real-Ip", "203.0.113.9")
	absent(t, r, "Script_name")

	rec2 := newRecorder(t, "app")
	addr2, stop2 := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec2.URL(), "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"})
	exchange(t, addr2, "GET /x HTTP/1.1\r\n"+host+"X-Forwarded-For: 203.0.113.9\r\n\r\n", 1)
	stop2()
	reqs2, _ := rec2.record()
	if len(reqs2) != 1 {
		t.Fatalf("backend %v", targets(reqs2))
	}
	want(t, reqs2[0], "X-Forwarded-For", "203.0.113.9, 127.0.0.1")
}

// fcgiApp is a FastCGI responder (net/http/fcgi) that records the request header and the CGI variables
// net/http/fcgi did not map onto the request.
type fcgiApp struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []map[string]string
}

func newFCGIApp(t *testing.T) *fcgiApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &fcgiApp{ln: ln}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fcgi.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			vars := fcgi.ProcessEnv(r)
			for k, v := range r.Header {
				vars["HTTP_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = strings.Join(v, ", ")
			}
			vars["REQUEST_PATH"] = r.URL.Path
			vars["REQUEST_URI"] = r.URL.RequestURI() // net/http/cgi parses REQUEST_URI into URL (RawPath keeps the escapes)
			vars["REMOTE_ADDR"], _, _ = net.SplitHostPort(r.RemoteAddr)
			if r.TLS != nil {
				vars["HTTPS"] = "on"
			}
			a.mu.Lock()
			a.seen = append(a.seen, vars)
			a.mu.Unlock()
			json.NewEncoder(w).Encode(vars)
		}))
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return a
}

func TestCGIFamilyHeaderTrust(t *testing.T) {
	app := newFCGIApp(t)
	rec := newRecorder(t, "primary")
	addr, stop := startGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(),
		"GATEWAY_ROUTES": "/fcgi/=fastcgi://" + app.ln.Addr().String()})
	defer stop()
	t.Run("httpoxy (CVE-2016-5385) and underscore aliases: no client header sets HTTP_PROXY, a script name or a forwarding variable", func(t *testing.T) {
		rs, _ := exchange(t, addr, "GET /fcgi/x HTTP/1.1\r\n"+host+spoofs+"Connection: close\r\n\r\n", 1)
		if len(rs) != 1 || rs[0].Status != 200 {
			t.Fatalf("statuses %v", statuses(rs))
		}
		var vars map[string]string
		if err := json.Unmarshal([]byte(rs[0].Body), &vars); err != nil {
			t.Fatalf("%v: %q", err, rs[0].Body)
		}
		if v, ok := vars["HTTP_PROXY"]; ok {
			t.Errorf("HTTP_PROXY=%q reached the app (httpoxy)", v)
		}
		if vars["REQUEST_PATH"] != "/fcgi/x" {
			t.Errorf("REQUEST_URI path %q, want /fcgi/x", vars["REQUEST_PATH"])
		}
		for _, k := range []string{"HTTP_X_SCRIPT_NAME", "HTTP_SCRIPT_NAME", "HTTP_FORWARDED", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_PREFIX",
			"HTTP_X_FORWARDED_USER", "HTTP_X_ORIGINAL_URL", "HTTP_TRUE_CLIENT_IP", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PROTO"} {
			if v, ok := vars[k]; ok {
				t.Errorf("%s=%q reached the app", k, v)
			}
		}
		if v := vars["HTTP_X_FORWARDED_FOR"]; strings.Contains(v, "6.6.6.6") {
			t.Errorf("HTTP_X_FORWARDED_FOR=%q carries the client's claim", v)
		}
		if vars["REMOTE_ADDR"] != "127.0.0.1" || vars["HTTPS"] == "on" || vars["REQUEST_SCHEME"] == "https" {
			t.Errorf("REMOTE_ADDR=%q HTTPS=%q REQUEST_SCHEME=%q, want the connection's own", vars["REMOTE_ADDR"], vars["HTTPS"], vars["REQUEST_SCHEME"])
		}
	})
	t.Run("CVE-2019-11043 PHP-FPM path_info: an encoded line feed after the script never reaches the FastCGI app", func(t *testing.T) {
		app.mu.Lock()
		before := len(app.seen)
		app.mu.Unlock()
		rs, _ := exchange(t, addr, "GET /fcgi/index.php/PHP%0Ais_the_shittiest_lang.php?a HTTP/1.1\r\n"+host+"Connection: close\r\n\r\n", 1)
		if len(rs) != 1 || rs[0].Status != 400 {
			t.Fatalf("statuses %v, want 400", statuses(rs))
		}
		app.mu.Lock()
		defer app.mu.Unlock()
		if len(app.seen) != before {
			t.Errorf("the FastCGI app was called: %v", app.seen[before:])
		}
	})
}

func want(t *testing.T, r seenRequest, name, value string) {
	t.Helper()
	if got := r.Header.Values(name); len(got) != 1 || got[0] != value {
		t.Errorf("%s = %q, want exactly %q", name, got, value)
	}
}

func absent(t *testing.T, r seenRequest, names ...string) {
	t.Helper()
	for _, n := range names {
		if v, ok := r.Header[n]; ok {
			t.Errorf("%s: %q reached the app", n, v)
		}
	}
}
