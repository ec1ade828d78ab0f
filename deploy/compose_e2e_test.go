package deploy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// localService is a compose service started as a local process.
type localService struct {
	socket  string            // unix socket the app listens on
	volumes map[string]string // the service's container paths -> host directories
}

// localServices maps each app service of docker-compose.yml to the same app started as a local process
// with internal/testpeer, on a unix socket. Each launcher gets the service's compose environment. The
// servers are the ones the service's Dockerfile runs (gunicorn, PHP-FPM, node), from Debian rather than
// the image.
var localServices = map[string]func(t *testing.T, env []string) localService{
	"django": func(t *testing.T, env []string) localService {
		dir := testpeer.DjangoProject(t)
		static := testpeer.CollectStatic(t, dir) // the image runs collectstatic into /app/staticfiles
		sock := testpeer.SocketPath(t, "django.sock")
		env = append(env, "DJANGO_STATIC_ROOT="+static, "FORWARDED_ALLOW_IPS=*")
		testpeer.StartGunicorn(t, dir, "mysite.wsgi", "unix:"+sock, env...)
		return localService{socket: sock, volumes: map[string]string{"/app/staticfiles": static}}
	},
	"flask": func(t *testing.T, env []string) localService {
		sock := testpeer.SocketPath(t, "flask.sock")
		testpeer.StartGunicorn(t, testpeer.FlaskApp(t), "app:app", "unix:"+sock, env...)
		return localService{socket: sock}
	},
	"php": func(t *testing.T, env []string) localService {
		docroot := filepath.Join(testpeer.ExamplesDir(), "php") // the image copies it to /var/www/html
		return localService{socket: testpeer.StartPHPFPM(t, docroot), volumes: map[string]string{"/var/www/html": docroot}}
	},
	"node": func(t *testing.T, env []string) localService {
		sock := testpeer.SocketPath(t, "node.sock")
		testpeer.StartNode(t, sock)
		return localService{socket: sock}
	},
}

// localScheme is the scheme an app URL takes when its host:port becomes a unix socket.
var localScheme = map[string]string{"http": "unix", "fastcgi": "fastcgi+unix"}

// TestComposeAsLocalProcesses runs the composition of docker-compose.yml without Docker: every app service
// as a local process (localServices), then the gateway binary with the compose file's gateway environment,
// changing only what a container network provides: service hostnames become the apps' unix sockets, the
// gateway's volume paths become the host directories behind them, and the listen addresses move to free
// loopback ports. Every app must answer behind the one port.
func TestComposeAsLocalProcesses(t *testing.T) {
	c := loadCompose(t)
	gw := c.Services[gatewayService]
	for name := range c.Services {
		if name != gatewayService && localServices[name] == nil {
			t.Fatalf("service %s has no local equivalent in localServices: add one", name)
		}
	}
	bin := gatewayBinary(t)

	// Start the apps in the order the gateway's depends_on lists them (sorted for a stable order).
	local := map[string]localService{}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range gw.DependsOn {
			if !yield(n) {
				return
			}
		}
	}) {
		var env []string
		for k, v := range c.Services[name].Environment {
			env = append(env, k+"="+v)
		}
		local[name] = localServices[name](t, env)
	}

	// The gateway's environment: the compose values with hostnames and volume paths rewritten.
	genv := checkVariables(t, "docker-compose.yml", gw.Environment)
	for k, v := range genv {
		genv[k] = appURL.ReplaceAllStringFunc(v, func(u string) string {
			m := appURL.FindStringSubmatch(u)
			svc, ok := local[m[2]]
			scheme := localScheme[m[1]]
			if !ok || scheme == "" {
				t.Fatalf("%s: app URL %s: no local service or scheme for it", k, u)
			}
			return scheme + "://" + svc.socket
		})
	}
	genv = hostPaths(t, gw, genv, func(volume string) string {
		// A named volume is what the service that owns it mounted there (the django image's staticfiles).
		for name, s := range c.Services {
			for _, v := range s.Volumes {
				if m, err := parseMount(v); err == nil && m.source == volume && !m.readOnly && local[name].volumes[m.target] != "" {
					return local[name].volumes[m.target]
				}
			}
		}
		t.Fatalf("named volume %s: no local service provides it", volume)
		return ""
	})
	ports := testpeer.FreePorts(t, 2) // distinct: two FreePort calls can return one port twice
	front := ports[0]
	genv["GATEWAY_ADDR"] = front
	admin := ""
	if _, ok := genv["GATEWAY_ADMIN_ADDR"]; ok {
		admin = ports[1]
		genv["GATEWAY_ADMIN_ADDR"] = admin
	}
	var envList []string
	for k, v := range genv {
		envList = append(envList, k+"="+v)
	}
	t.Logf("gateway environment: %q", envList)
	p := testpeer.Start(t, "", envList, bin, "serve")
	testpeer.WaitDial(t, p, "tcp", front, 30*time.Second)
	base := "http://" + front

	client := &http.Client{Timeout: 30 * time.Second}
	get := func(t *testing.T, url string) (int, http.Header, []byte) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("GET %s: body: %v", url, err)
		}
		return resp.StatusCode, resp.Header, b
	}
	getJSON := func(t *testing.T, path string) map[string]any {
		t.Helper()
		code, _, b := get(t, base+path)
		if code != http.StatusOK {
			t.Fatalf("GET %s: status %d: %s\ngateway output:\n%s", path, code, b, p.Output())
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("GET %s: not JSON: %v: %s", path, err, b)
		}
		return m
	}
	expect := func(t *testing.T, path string, m map[string]any, want map[string]string) {
		t.Helper()
		for k, v := range want {
			if got, _ := m[k].(string); got != v {
				t.Errorf("GET %s: %s = %q, want %q (answer %v)", path, k, got, v, m)
			}
		}
	}

	tests := []struct {
		name  string
		check func(t *testing.T)
	}{
		{"Django answers at the root as the primary app", func(t *testing.T) {
			m := getJSON(t, "/")
			expect(t, "/", m, map[string]string{"app": "django", "reverse_form": "/form/", "script_name": ""})
		}},
		{"Django's hashed static files are served by the gateway from the shared volume", func(t *testing.T) {
			css, _ := getJSON(t, "/")["static_css"].(string)
			if !strings.HasPrefix(css, "/static/shop/site.") || !strings.HasSuffix(css, ".css") || css == "/static/shop/site.css" {
				t.Fatalf("static_css %q: want a hashed name under /static/", css)
			}
			code, h, b := get(t, base+css)
			if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/css") || len(b) == 0 {
				t.Errorf("GET %s: %d %s (%d bytes)", css, code, h.Get("Content-Type"), len(b))
			}
			if !strings.Contains(h.Get("Cache-Control"), "immutable") {
				t.Errorf("GET %s: Cache-Control %q, want immutable for a hashed name", css, h.Get("Cache-Control"))
			}
		}},
		{"Flask answers under /flask/ and builds URLs with the prefix", func(t *testing.T) {
			m := getJSON(t, "/flask/")
			expect(t, "/flask/", m, map[string]string{"app": "flask", "script_root": "/flask", "path": "/", "url_for_hello": "/flask/hello/world"})
		}},
		{"PHP-FPM runs index.php under /php/", func(t *testing.T) {
			m := getJSON(t, "/php/index.php")
			expect(t, "/php/index.php", m, map[string]string{"app": "php", "SCRIPT_NAME": "/php/index.php"})
		}},
		{"PHP-FPM never runs an uploaded file through a .php suffix", func(t *testing.T) {
			_, _, b := get(t, base+"/php/uploads/evil.jpg/x.php")
			if strings.Contains(string(b), "PWNED") {
				t.Errorf("GET /php/uploads/evil.jpg/x.php executed evil.jpg: %s", b)
			}
		}},
		{"Node answers under /node/ with the prefix stripped", func(t *testing.T) {
			m := getJSON(t, "/node/")
			expect(t, "/node/", m, map[string]string{"app": "node", "path": "/"})
			fw, _ := m["forwarded"].(map[string]any)
			if fw["x-forwarded-prefix"] != "/node" {
				t.Errorf("GET /node/: forwarded headers %v, want x-forwarded-prefix /node", fw)
			}
		}},
		{"the admin port answers the probes", func(t *testing.T) {
			if admin == "" {
				t.Skip("this binary has no admin listener yet (GATEWAY_ADMIN_ADDR)")
			}
			if code, _, b := get(t, "http://"+admin+"/healthz"); code != http.StatusOK {
				t.Errorf("GET admin /healthz: %d %s", code, b)
			}
			// Readiness follows the primary's active health checks: poll it as the kubelet would.
			deadline := time.Now().Add(30 * time.Second)
			for {
				code, _, b := get(t, "http://"+admin+"/readyz")
				if code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET admin /readyz: still %d after 30s: %s", code, b)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.check)
	}
}
