package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/internal/testpeer"
	"github.com/switchyard/switchyard/procs"
)

// portalProject is a `django-admin startproject portal` with three settings modules (SITE_NAME A, B and
// C, the last two importing the first) and a whoami/ view answering "<settings module> <SITE_NAME>".
func portalProject(t *testing.T) string {
	t.Helper()
	dir := testpeer.StartProject(t, "portal")
	pkg := filepath.Join(dir, "portal")
	settings, err := os.ReadFile(filepath.Join(pkg, "settings.py"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(settings), "ALLOWED_HOSTS = []", `ALLOWED_HOSTS = [".example.test"]`, 1)
	if s == string(settings) {
		t.Fatal("startproject's settings.py has no ALLOWED_HOSTS = []")
	}
	urls, err := os.ReadFile(filepath.Join(pkg, "urls.py"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"settings.py":   s + "\nSITE_NAME = \"A\"\n",
		"settings_b.py": "from .settings import *  # noqa\n\nSITE_NAME = \"B\"\n",
		"settings_c.py": "from .settings import *  # noqa\n\nSITE_NAME = \"C\"\n",
		"urls.py": string(urls) + "\nfrom django.conf import settings\nfrom django.http import HttpResponse\n\n" +
			"urlpatterns.append(path(\"whoami/\", lambda request: HttpResponse(settings.SETTINGS_MODULE + \" \" + settings.SITE_NAME)))\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func hostGet(c *http.Client, base, host, path string) (int, string, error) {
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func processes(t *testing.T, admin string) map[string]procs.Status {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/api/processes")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	// Written like every admin JSON endpoint: indented for people reading it with curl.
	if !strings.HasPrefix(string(b), "[\n  {") || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("/api/processes answers %q (%s), want an indented JSON list", b, resp.Header.Get("Content-Type"))
	}
	var st []procs.Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	out := map[string]procs.Status{}
	for _, s := range st {
		out[s.App] = s
	}
	return out
}

// waitProcesses polls the admin API (bounded) until cond holds.
func waitProcesses(t *testing.T, admin, what string, cond func(map[string]procs.Status) bool) map[string]procs.Status {
	t.Helper()
	for i := 0; i < 600; i++ {
		if st := processes(t, admin); cond(st) {
			return st
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %+v", what, processes(t, admin))
	return nil
}

// The gateway runs two Django sites from one project, each under its own gunicorn with its own
// DJANGO_SETTINGS_MODULE, and a third under uWSGI over the uwsgi protocol: each answers from its own
// settings. Then: a killed instance is restarted and serves again; a restart through the admin API under
// continuous load loses no request; SIGTERM leaves no process behind.
func TestRunAppsDjangoSitesUnderGunicornAndUWSGI(t *testing.T) {
	dir := portalProject(t)
	uwsgi := testpeer.NeedUWSGI(t)
	cfg := `
routes:
  - pattern: a.example.test/
    app: unix://{socket}
    run:
      name: site-a
      command: [` + testpeer.Gunicorn + `, --bind, "unix:{socket}", --workers, "2", --threads, "4", --graceful-timeout, "5", portal.wsgi]
      dir: ` + dir + `
      env: {DJANGO_SETTINGS_MODULE: portal.settings, PYTHONDONTWRITEBYTECODE: "1"}
  - pattern: b.example.test/
    app: unix://{socket}
    run:
      name: site-b
      command: ` + testpeer.Gunicorn + ` --bind unix:{socket} --workers 1 portal.wsgi
      dir: ` + dir + `
      env: {DJANGO_SETTINGS_MODULE: portal.settings_b, PYTHONDONTWRITEBYTECODE: "1"}
  - pattern: c.example.test/
    app: uwsgi+unix://{socket}
    run:
      name: site-c
      command: [` + uwsgi + `, --plugin, python3, --socket, "{socket}", --module, portal.wsgi, --die-on-term, --processes, "1", --buffer-size, "65535"]
      dir: ` + dir + `
      env: {DJANGO_SETTINGS_MODULE: portal.settings_c, PYTHONDONTWRITEBYTECODE: "1"}
`
	path := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startGateway(t, "GATEWAY_CONFIG="+path, "GATEWAY_SHUTDOWN_TIMEOUT=10s")
	base := "http://" + p.addr
	c := &http.Client{Timeout: 30 * time.Second}
	want := map[string]string{"a.example.test": "portal.settings A", "b.example.test": "portal.settings_b B", "c.example.test": "portal.settings_c C"}
	for i := 0; i < 2; i++ {
		for _, host := range []string{"c.example.test", "b.example.test", "a.example.test"} {
			code, body, err := hostGet(c, base, host, "/whoami/")
			if err != nil || code != 200 || body != want[host] {
				t.Fatalf("%s: %d %q %v, want %q", host, code, body, err, want[host])
			}
		}
	}
	// The gunicorn sites are HTTP apps: the fast lane's event loops serve their routes (the run apps'
	// guard admits them). On connections of their own: the uWSGI site's requests go through the handler
	// chain, and the lane hands a connection to it for good.
	fresh := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := 0; i < 2; i++ {
		for _, host := range []string{"b.example.test", "a.example.test"} {
			if code, body, err := hostGet(fresh, base, host, "/whoami/"); err != nil || code != 200 || body != want[host] {
				t.Fatalf("%s: %d %q %v, want %q", host, code, body, err, want[host])
			}
		}
	}
	if _, metrics, err := getBody(http.DefaultClient, "http://"+p.admin+"/metrics"); err != nil || metricValue(metrics, `switchyard_fast_lane_loop_exchanges_total{listener="http"}`) < 4 {
		t.Fatalf("the event loops did not serve the gunicorn sites (%v):\n%s", err, metrics)
	}

	// kill -9 of an app process: restarted on its address, the next requests succeed.
	st := processes(t, p.admin)
	oldB := st["site-b"].PID
	if err := syscall.Kill(oldB, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.waitFor(t, "run app instance exited; restarting", "app=site-b", "signal: killed")
	waitProcesses(t, p.admin, "site-b to be restarted", func(st map[string]procs.Status) bool {
		return st["site-b"].Restarts == 1 && st["site-b"].State == procs.StateRunning && st["site-b"].PID != oldB
	})
	if code, body, err := hostGet(c, base, "b.example.test", "/whoami/"); err != nil || code != 200 || body != want["b.example.test"] {
		t.Fatalf("after the restart: %d %q %v", code, body, err)
	}
	if _, metrics, err := getBody(http.DefaultClient, "http://"+p.admin+"/metrics"); err != nil ||
		!strings.Contains(metrics, `switchyard_run_app_restarts_total{app="site-b"} 1`) ||
		!strings.Contains(metrics, `switchyard_run_app_instances{app="site-b",state="running"} 1`) {
		t.Fatalf("metrics after the restart (%v):\n%s", err, metrics)
	}

	// A restart under continuous load: no request fails.
	oldA := processes(t, p.admin)["site-a"]
	var failures, served atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := &http.Client{Timeout: 30 * time.Second}
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := hostGet(lc, base, "a.example.test", "/whoami/")
				if err != nil || code != 200 || body != want["a.example.test"] {
					failures.Add(1)
					firstFailure.CompareAndSwap(nil, strings.TrimSpace(body)+" "+http.StatusText(code)+" "+errString(err))
					continue
				}
				served.Add(1)
			}
		}()
	}
	for served.Load() < 20 && failures.Load()+served.Load() < 4*5000 { // bounded by the workers' loops
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Post("http://"+p.admin+"/api/processes/restart?app=site-a", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("restart: %d %s", resp.StatusCode, msg)
	}
	after := served.Load()
	p.waitFor(t, "run app: replaced instances stopped", "app=site-a")
	for served.Load() < after+20 && failures.Load()+served.Load() < 4*5000 { // bounded by the workers' loops
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during the restart; first: %v", n, n+served.Load(), firstFailure.Load())
	}
	newA := processes(t, p.admin)["site-a"]
	if newA.PID == oldA.PID || newA.Address == oldA.Address {
		t.Fatalf("site-a was not replaced: before %+v after %+v", oldA, newA)
	}
	if err := syscall.Kill(-oldA.PID, 0); err != syscall.ESRCH {
		t.Fatalf("the replaced site-a process group %d is still there (%v)", oldA.PID, err)
	}
	t.Logf("%d requests served during the restart, none failed", served.Load())

	// Shutdown: every process group is gone when the gateway has exited.
	final := processes(t, p.admin)
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitFor(t, "run apps stopped")
	p.cmd.Wait()
	for app, s := range final {
		if err := syscall.Kill(-s.PID, 0); err != syscall.ESRCH {
			t.Errorf("%s: process group %d survived the gateway (%v)", app, s.PID, err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A run app that cannot start is a configuration error naming the app, the command and why; the gateway
// does not start.
func TestRunAppThatExitsAtOnceStopsTheStart(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"serve"}, []string{
		"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_ADMIN_ADDR=",
		"GATEWAY_RUN=broken: /bin/sh -c 'echo no module named portal >&2; exit 3'",
		"GATEWAY_ROUTES=/=unix://{socket}?run=broken",
	}, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, errb.String())
	}
	for _, w := range []string{`run app "broken"`, "/bin/sh -c", "exit status 3", "no module named portal"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("error lacks %q:\n%s", w, errb.String())
		}
	}
}

// With run apps too, one run of gateway check (or a start, or a reload) reports every problem: the
// settings', the run apps' own (a missing directory) and the apps' options, together.
func TestCheckWithRunAppsReportsEveryProblem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "gw.yaml")
	yaml := "run:\n  web:\n    command: [node, app.js]\n    instances: lots\nroutes:\n  - pattern: /\n    app: http://{addr}?run=web&strip_prefix=maybe\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		// An entry that cannot be read still declares its name: the URL that names it is checked for its
		// other options, and not reported as naming no run app nor as no URL.
		{"a run app's entry and its URL's option", []string{
			"GATEWAY_RUN=web(instances=x): node app.js",
			"GATEWAY_ROUTES=/=http://{addr}?run=web&strip_prefix=maybe,/b/=unix://{socket}?run=nope",
		}, []string{`instances="x"`, `app "http://{addr}?run=web&strip_prefix=maybe": option strip_prefix="maybe"`,
			`option run=nope names no run app (declared: web (its entry has a problem))`}},
		{"a run app's mapping in the file and its URL's option", []string{"GATEWAY_CONFIG=" + file},
			[]string{`gw.yaml:2: run: web: line 4: instances="lots"`, `gw.yaml:7: routes[0]: route /: app "http://{addr}?run=web&strip_prefix=maybe": option strip_prefix="maybe"`}},
		// A problem of the URL that names a run app quotes the URL as written, not with the addresses
		// filled in.
		{"a run app's URL's option", []string{
			"GATEWAY_RUN=web(instances=2): /bin/sh -c 'exec true'",
			"GATEWAY_ROUTES=/=http://{addr}?run=web&timeout=abc",
		}, []string{`route /: app "http://{addr}?run=web&timeout=abc": option timeout="abc"`}},
		// One problem, said once: not again as instances "listed twice" that the gateway made up.
		{"a run app's URL of two addresses", []string{
			"GATEWAY_RUN=web(instances=2): /bin/sh -c 'exec true'",
			"GATEWAY_ROUTES=/=http://{addr}|http://{addr}?run=web",
		}, []string{`a run app's URL is one address; the instances key makes several`}},
		{"a fixed port with two instances", []string{
			"GATEWAY_RUN=web(instances=2, port=3000): /bin/sh -c 'exec true'",
			"GATEWAY_ROUTES=/=http://{addr}?run=web",
		}, []string{`port 3000 with 2 instances: a fixed port holds one instance`}},
		{"a run app's directory and another app's option", []string{
			"GATEWAY_RUN=web(dir=/no/such/dir): /bin/sh -c 'exec true'",
			"GATEWAY_ROUTES=/=unix://{socket}?run=web,/b/=http://127.0.0.1:9?strip_prefix=maybe",
		}, []string{`"/no/such/dir"`, `strip_prefix="maybe"`}},
		{"and a setting", []string{
			"GATEWAY_MAX_CONNS=lots",
			"GATEWAY_RUN=web(dir=/no/such/dir): /bin/sh -c 'exec true'",
			"GATEWAY_ROUTES=/=unix://{socket}?run=web&strip_prefix=maybe",
		}, []string{"GATEWAY_MAX_CONNS", `"/no/such/dir"`, `strip_prefix="maybe"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"check"}, tc.env, &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2\n%s", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("the report lacks %s:\n%s", w, errb.String())
				}
			}
			// Neither a placeholder read as a URL nor an address the check made up.
			for _, w := range []string{"is not a URL", "127.0.0.1:1", "switchyard-run-", "names no run app (declared: none)", "listed twice"} {
				if strings.Contains(errb.String(), w) {
					t.Errorf("the report has %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

// gateway check prints each run app with its command, address and instance count, and finds a missing
// program without starting anything.
func TestCheckPrintsRunApps(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"check"}, []string{
		"GATEWAY_RUN=web(instances=2, env.NODE_ENV=production): /bin/sh -c 'exec node server.js'",
		"GATEWAY_ROUTES=/=http://{addr}?run=web",
	}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, w := range []string{"run apps", "web", `/bin/sh -c "exec node server.js"`, "loopback port", "2", "http://127.0.0.1:1|http://127.0.0.1:2?name=web"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("check output lacks %q:\n%s", w, out.String())
		}
	}
	// A run app on a unix socket: its address is the gateway's to allocate, so no warning about the
	// socket's directory (check allocates none).
	out.Reset()
	errb.Reset()
	code = run([]string{"check"}, []string{
		"GATEWAY_RUN=site: gunicorn --bind unix:{socket} site.wsgi",
		"GATEWAY_ROUTES=/=unix://{socket}?run=site",
	}, &out, &errb)
	if code != 0 || strings.Contains(out.String()+errb.String(), "does not exist") {
		t.Fatalf("exit %d, a warning about the socket directory check made up:\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	code = run([]string{"check"}, []string{
		"GATEWAY_RUN=web(dir=/no/such/dir): no-such-server --port {port}",
		"GATEWAY_ROUTES=/=http://{addr}?run=web",
	}, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), `working directory "/no/such/dir"`) || !strings.Contains(errb.String(), `program "no-such-server" not found`) {
		t.Fatalf("exit %d:\n%s", code, errb.String())
	}
}

// loadLoop sends requests to host on the gateway from 4 clients until stop is closed (each at most 5000),
// counting answers; an answer that is not 200 or that check refuses counts as a failure.
type loadLoop struct {
	served, failures atomic.Int64
	first            atomic.Value
	stop             chan struct{}
	wg               sync.WaitGroup
}

func startLoad(base, host, path string, check func(body string) bool) *loadLoop {
	l := &loadLoop{stop: make(chan struct{})}
	for w := 0; w < 4; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			c := &http.Client{Timeout: 30 * time.Second}
			for i := 0; i < 5000; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				code, body, err := hostGet(c, base, host, path)
				if err != nil || code != 200 || !check(body) {
					l.failures.Add(1)
					l.first.CompareAndSwap(nil, http.StatusText(code)+" "+strings.TrimSpace(body)+" "+errString(err))
					continue
				}
				l.served.Add(1)
			}
		}()
	}
	return l
}

// waitServed waits until n more answers than now were served (bounded by the clients' loops).
func (l *loadLoop) waitServed(n int64) {
	target := l.served.Load() + n
	for l.served.Load() < target && l.failures.Load()+l.served.Load() < 4*5000 {
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *loadLoop) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	if n := l.failures.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", n, n+l.served.Load(), l.first.Load())
	}
}

// A reload that changes a run app's environment replaces its instances without a failed request; one
// that changes something else keeps them.
func TestRunAppReloadReplacesChangedAppsOnly(t *testing.T) {
	testpeer.Need(t, "apt-get install gunicorn", "gunicorn")
	dir := t.TempDir()
	app := "import os\n\ndef application(environ, start_response):\n" +
		"    body = os.environ.get('VERSION', 'unset').encode()\n" +
		"    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])\n" +
		"    return [body]\n"
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := func(version, extra string) []byte {
		return []byte(`
run:
  web:
    command: [` + testpeer.Gunicorn + `, --bind, "unix:{socket}", --workers, "2", --graceful-timeout, "5", "app:application"]
    dir: ` + dir + `
    env: {VERSION: "` + version + `"}
routes:
  - pattern: /
    app: unix://{socket}?run=web
` + extra)
	}
	path := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(path, conf("1", ""), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startGateway(t, "GATEWAY_CONFIG="+path)
	base := "http://" + p.addr
	before := processes(t, p.admin)["web"]

	// Another route added: the app keeps its instance.
	replaceFile(t, path, conf("1", "  - pattern: /gone/\n    app: status:410\n"))
	p.waitFor(t, "configuration reloaded")
	if now := processes(t, p.admin)["web"]; now.PID != before.PID {
		t.Fatalf("an unrelated change restarted the app: %+v then %+v", before, now)
	}

	// Its environment changed: new instances, no failed request, the new version answers.
	load := startLoad(base, "localhost", "/", func(b string) bool { return b == "1" || b == "2" })
	load.waitServed(20)
	replaceFile(t, path, conf("2", ""))
	p.waitFor(t, "configuration reloaded")
	p.waitFor(t, "run app: replaced instances stopped", "app=web")
	load.waitServed(20)
	load.finish(t)
	if code, body, err := hostGet(http.DefaultClient, base, "localhost", "/"); code != 200 || body != "2" {
		t.Fatalf("after the reload: %d %q %v", code, body, err)
	}
	if err := syscall.Kill(-before.PID, 0); err != syscall.ESRCH {
		t.Fatalf("the replaced process group %d is still there (%v)", before.PID, err)
	}

	// SIGUSR2 restarts every run app the same way, with the configuration unchanged.
	v2 := processes(t, p.admin)["web"]
	p.cmd.Process.Signal(syscall.SIGUSR2)
	p.waitFor(t, "run apps restarted", "trigger=SIGUSR2")
	if now := processes(t, p.admin)["web"]; now.PID == v2.PID || now.State != procs.StateRunning {
		t.Fatalf("SIGUSR2 did not restart the app: %+v then %+v", v2, now)
	}
	if code, body, _ := hostGet(http.DefaultClient, base, "localhost", "/"); code != 200 || body != "2" {
		t.Fatalf("after SIGUSR2: %d %q", code, body)
	}
}

// PHP-FPM with its own pool file, listening on the socket the gateway allocated (${SOCKET} in the pool
// file), and a Node app on a loopback port ($PORT), both run by the gateway; each gets only its own
// environment.
func TestRunAppsPHPFPMPoolAndNode(t *testing.T) {
	fpm := testpeer.Need(t, "apt-get install php-fpm", testpeer.PHPFPM)[0]
	node := testpeer.Need(t, "install Node.js 20 (apt-get install nodejs)", "node")[0]
	dir := t.TempDir()
	docroot := filepath.Join(dir, "www")
	if err := os.Mkdir(docroot, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(docroot, "index.php"): `<?php header("Content-Type: text/plain"); echo "php site=", getenv("APP_SITE"), " secret=", getenv("APP_SECRET") === false ? "none" : "leaked";`,
		filepath.Join(dir, "pool.conf"): `[global]
pid = ` + dir + `/php-fpm.pid
error_log = /proc/self/fd/2
daemonize = no

[site]
user = root
group = root
listen = ${SOCKET}
listen.mode = 0600
pm = static
pm.max_children = 2
clear_env = yes
env[APP_SITE] = $APP_SITE
`,
		filepath.Join(dir, "server.js"): `const http = require("http");
http.createServer((req, res) => {
  res.setHeader("Content-Type", "text/plain");
  res.end("node env=" + process.env.NODE_ENV + " secret=" + (process.env.APP_SECRET === undefined ? "none" : "leaked"));
}).listen(Number(process.env.PORT), process.env.HOST);
`,
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("the pool file runs PHP-FPM as root (-R); run as root") // the CI container does
	}
	p := startGateway(t,
		"APP_SECRET=x", // in the gateway's environment: no run app inherits it
		"GATEWAY_RUN=php(env.APP_SITE=shop): "+fpm+" -F -R -y "+filepath.Join(dir, "pool.conf")+
			"\nweb(dir="+dir+", env.NODE_ENV=production): "+node+" server.js",
		"GATEWAY_ROUTES=/shop/=fastcgi+unix://{socket}?run=php&root="+docroot+",/=http://{addr}?run=web",
	)
	base := "http://" + p.addr
	for path, want := range map[string]string{"/shop/": "php site=shop secret=none", "/shop/cart": "php site=shop secret=none", "/": "node env=production secret=none"} {
		code, body, err := hostGet(http.DefaultClient, base, "localhost", path)
		if err != nil || code != 200 || body != want {
			t.Errorf("%s: %d %q %v, want %q", path, code, body, err, want)
		}
	}
	st := processes(t, p.admin)
	if !strings.HasPrefix(st["web"].Address, "127.0.0.1:") || !strings.HasSuffix(st["php"].Address, ".sock") {
		t.Fatalf("addresses %+v", st)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	p.waitFor(t, "run apps stopped")
	p.cmd.Wait()
	for app, s := range st {
		if err := syscall.Kill(-s.PID, 0); err != syscall.ESRCH {
			t.Errorf("%s: process group %d survived the gateway (%v)", app, s.PID, err)
		}
	}
}

// While a route's run app has no live instance (it crashed and keeps crashing), its requests get 503 with
// Retry-After and a log line that says why, not the 502 of an unreachable app.
func TestRunAppWithoutLiveInstanceAnswers503(t *testing.T) {
	testpeer.Need(t, "apt-get install gunicorn", "gunicorn")
	dir := t.TempDir()
	app := "def application(environ, start_response):\n    start_response('200 OK', [('Content-Length', '2')])\n    return [b'ok']\n"
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	// The first start serves; every later one fails at once, as an app with a broken deploy would.
	script := "if [ -e started ]; then echo broken deploy >&2; exit 1; fi; touch started; exec " + testpeer.Gunicorn + " --bind unix:$SOCKET --workers 1 app:application"
	p := startGateway(t,
		"GATEWAY_RUN=web(dir="+dir+`): /bin/sh -c '`+script+`'`,
		"GATEWAY_ROUTES=/=unix://{socket}?run=web",
	)
	base := "http://" + p.addr
	if code, body, err := hostGet(http.DefaultClient, base, "localhost", "/"); code != 200 || body != "ok" {
		t.Fatalf("first answer: %d %q %v", code, body, err)
	}
	syscall.Kill(processes(t, p.admin)["web"].PID, syscall.SIGKILL)
	p.waitFor(t, "run app instance exited; restarting", "app=web")
	req, _ := http.NewRequest("GET", base+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("while the app is down: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	line := p.waitFor(t, "run app cannot take the request; answering 503", "app=web")
	if !strings.Contains(line, "instance 0") || !strings.Contains(line, "last exit") {
		t.Fatalf("the line does not say why: %s", line)
	}
}

// A gateway killed with SIGKILL cannot stop its apps: on Linux the kernel's parent death signal ends the
// app server it started, and gunicorn's workers follow their master (they look for it every --timeout
// seconds: 2 here). No process of the app's group is left.
func TestKilledGatewayLeavesNoAppBehind(t *testing.T) {
	if !procs.ParentDeathSignal {
		t.Skip("no parent death signal on this system: apps outlive a gateway killed with SIGKILL (docs/run-apps.md)")
	}
	testpeer.Need(t, "apt-get install gunicorn", "gunicorn")
	dir := t.TempDir()
	app := "def application(environ, start_response):\n    start_response('200 OK', [('Content-Length', '2')])\n    return [b'ok']\n"
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startGateway(t,
		"GATEWAY_RUN=web(dir="+dir+"): "+testpeer.Gunicorn+" --bind unix:{socket} --workers 2 --timeout 2 app:application",
		"GATEWAY_ROUTES=/=unix://{socket}?run=web",
	)
	if code, _, err := hostGet(http.DefaultClient, "http://"+p.addr, "localhost", "/"); code != 200 {
		t.Fatalf("%d %v", code, err)
	}
	pgid := processes(t, p.admin)["web"].PID
	p.cmd.Process.Kill()
	p.cmd.Wait()
	for i := 0; i < 400; i++ { // the workers notice their master gone within their --timeout
		if syscall.Kill(-pgid, 0) == syscall.ESRCH {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("process group %d outlived the killed gateway by 20s", pgid)
}

// An on-demand app is not started before the gateway is ready; the first request starts it and waits
// for it rather than failing; after its idle timeout it is stopped, and the next request starts it again.
func TestRunAppOnDemand(t *testing.T) {
	testpeer.Need(t, "apt-get install gunicorn", "gunicorn")
	dir := t.TempDir()
	app := "def application(environ, start_response):\n    start_response('200 OK', [('Content-Length', '2')])\n    return [b'ok']\n"
	if err := os.WriteFile(filepath.Join(dir, "app.py"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startGateway(t,
		"GATEWAY_RUN=lazy(dir="+dir+", on_demand=true, idle_timeout=1s): "+testpeer.Gunicorn+" --bind unix:{socket} --workers 1 app:application",
		"GATEWAY_ROUTES=/lazy/=unix://{socket}?run=lazy",
	)
	if st := processes(t, p.admin)["lazy"]; st.State != procs.StateIdle || st.PID != 0 {
		t.Fatalf("started before its first request: %+v", st)
	}
	// Ready while the app is idle: the request that needs it starts it, so a readiness probe that waited
	// for it would keep that request from ever coming.
	if code, body, err := getBody(http.DefaultClient, "http://"+p.admin+"/readyz"); code != 200 {
		t.Fatalf("/readyz with the on-demand app idle: %d %q %v", code, body, err)
	}
	base := "http://" + p.addr
	for round := 0; round < 2; round++ {
		if code, body, err := hostGet(http.DefaultClient, base, "localhost", "/lazy/"); code != 200 || body != "ok" {
			t.Fatalf("round %d: %d %q %v", round, code, body, err)
		}
		if st := processes(t, p.admin)["lazy"]; st.State != procs.StateRunning {
			t.Fatalf("round %d: %+v", round, st)
		}
		p.waitFor(t, "run app idle; stopping it until its next request", "app=lazy")
		waitProcesses(t, p.admin, "the idle stop", func(st map[string]procs.Status) bool { return st["lazy"].State == procs.StateIdle })
	}
}

// gunicorn accepts connections before its workers load the app: a Django site whose settings module does
// not import is found at start (the start waits for an HTTP answer), a configuration error with Django's
// own message, not a crash loop after "ready".
func TestRunAppDjangoThatCannotLoadStopsTheStart(t *testing.T) {
	dir := testpeer.StartProject(t, "portal")
	var out, errb bytes.Buffer
	code := run([]string{"serve"}, []string{
		"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_ADMIN_ADDR=",
		"GATEWAY_RUN=site(dir=" + dir + ", env.DJANGO_SETTINGS_MODULE=portal.nosuch): " + testpeer.Gunicorn + " --bind unix:{socket} --workers 1 portal.wsgi",
		"GATEWAY_ROUTES=/=unix://{socket}?run=site",
	}, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, errb.String())
	}
	for _, w := range []string{`run app "site"`, "gunicorn --bind", "exit status 3", "No module named 'portal.nosuch'"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("error lacks %q:\n%s", w, errb.String())
		}
	}
}

// metricValue is the value of the series named (with its labels) in a Prometheus text exposition, or -1.
func metricValue(exposition, series string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return f
			}
		}
	}
	return -1
}

// A stock Express app run with instances=3 is balanced by the fast lane's event loops as by the handler
// chain (the lane off): round robin gives each instance a third of the requests, and while one instance is killed (kill
// -9) and restarted, no GET fails: the loop sends each request the dead instance refuses or drops to
// another instance, as the balancer does.
func TestRunAppExpressInstancesOnTheLoops(t *testing.T) {
	node := testpeer.Need(t, "install Node.js 20 (apt-get install nodejs)", "node")[0]
	modules := filepath.Join(testpeer.NodeDir(), "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "express", "package.json")); err != nil {
		testpeer.Missing(t, "express is not installed; run: npm ci --prefix deploy/examples/node")
	}
	dir := t.TempDir()
	app := `const express = require('express');
const app = express();
app.get('/', (req, res) => { res.send('pid ' + process.pid); });
app.post('/echo', express.text(), (req, res) => { res.send('pid ' + process.pid + ' got ' + req.body); });
app.listen(Number(process.env.PORT), process.env.HOST);
`
	if err := os.WriteFile(filepath.Join(dir, "app.js"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, lane := range []bool{true, false} {
		t.Run("GATEWAY_FAST_LANE="+strconv.FormatBool(lane), func(t *testing.T) {
			expressInstances(t, lane, node, modules, dir)
		})
	}
}

func expressInstances(t *testing.T, lane bool, node, modules, dir string) {
	p := startGateway(t, "GATEWAY_FAST_LANE="+strconv.FormatBool(lane),
		"GATEWAY_RUN=web(instances=3, dir="+dir+", env.NODE_PATH="+modules+"): "+node+" app.js",
		"GATEWAY_ROUTES=/=http://{addr}?run=web")
	base := "http://" + p.addr
	c := &http.Client{Timeout: 30 * time.Second}
	pids := map[string]int{}
	for i := 0; i < 30; i++ {
		code, body, err := hostGet(c, base, "localhost", "/")
		if err != nil || code != 200 || !strings.HasPrefix(body, "pid ") {
			t.Fatalf("GET /: %d %q %v", code, body, err)
		}
		pids[body]++
	}
	if len(pids) != 3 {
		t.Fatalf("answers by instance: %v; want 3 instances with 10 each", pids)
	}
	for who, n := range pids {
		if n != 10 {
			t.Errorf("%s answered %d of 30 requests; want 10 (round robin over 3)", who, n)
		}
	}
	for i := 0; i < 3; i++ {
		res, err := c.Post(base+"/echo", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasSuffix(string(b), " got hello") {
			t.Fatalf("POST /echo: %d %q", res.StatusCode, b)
		}
	}
	metrics := func() string {
		_, m, err := getBody(http.DefaultClient, "http://"+p.admin+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if n := metricValue(metrics(), `switchyard_fast_lane_loop_exchanges_total{listener="http"}`); lane && n < 33 {
		t.Fatalf("the event loops finished %v exchanges; want the 33", n)
	}

	// kill -9 of one instance: GETs go on until the supervisor has restarted it, every one answered.
	var insts []procs.Status
	if _, b, err := getBody(http.DefaultClient, "http://"+p.admin+"/api/processes"); err != nil || json.Unmarshal([]byte(b), &insts) != nil || len(insts) != 3 {
		t.Fatalf("/api/processes: %v %s", err, b)
	}
	victim := insts[1]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	restarted := func() bool {
		var now []procs.Status
		_, b, err := getBody(http.DefaultClient, "http://"+p.admin+"/api/processes")
		if err != nil || json.Unmarshal([]byte(b), &now) != nil {
			return false
		}
		for _, s := range now {
			if s.Instance == victim.Instance {
				return s.PID != victim.PID && s.State == "running"
			}
		}
		return false
	}
	sent := 0
	for ; sent < 5000 && (sent < 30 || !restarted()); sent++ {
		if code, body, err := hostGet(c, base, "localhost", "/"); err != nil || code != 200 || !strings.HasPrefix(body, "pid ") {
			t.Fatalf("GET / %d after the kill: %d %q %v", sent+1, code, body, err)
		}
	}
	if !restarted() {
		t.Fatalf("the killed instance was not restarted within %d requests", sent)
	}
	// Running again, it is in service at once: its failures while it was down ejected it, and the
	// supervisor told the gateway it serves again (not left out until fail_timeout).
	var apps []struct {
		Instances []adapters.InstanceHealth `json:"instances"`
	}
	if _, b, err := getBody(http.DefaultClient, "http://"+p.admin+"/api/upstreams"); err != nil || json.Unmarshal([]byte(b), &apps) != nil {
		t.Fatalf("/api/upstreams: %v %s", err, b)
	}
	for _, a := range apps {
		for _, in := range a.Instances {
			if strings.HasSuffix(in.Address, "//"+victim.Address) && (in.Unavailable != "" || in.ConsecutiveFailures != 0) {
				t.Errorf("the restarted instance %s is still out of service: %+v", victim.Address, in)
			}
		}
	}
	m := metrics()
	var retried float64
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "switchyard_upstream_retries_total{") && strings.Contains(line, `app="web"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			retried += v
		}
	}
	t.Logf("%d GETs while the instance was down and restarting, %v sent to another instance", sent, retried)
	if retried == 0 {
		t.Errorf("no request was sent to another instance while one was down:\n%s", m)
	}
}
