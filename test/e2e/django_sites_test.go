package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// multiSiteProject creates a project with django-admin startproject, as a user does, and gives it a second
// settings module, the usual shape of several sites on one codebase:
//
//	portal/settings.py     SITE_NAME = "A" (added), ALLOWED_HOSTS for the two sites' hosts
//	portal/settings_b.py   from .settings import *; SITE_NAME = "B"
//	portal/urls.py         + whoami/: "<settings module> <SITE_NAME>"
//
// wsgi.py stays as startproject writes it: os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings").
func multiSiteProject(t *testing.T) string {
	t.Helper()
	dir := testpeer.StartProject(t, "portal") // django-admin startproject, as a user does
	pkg := filepath.Join(dir, "portal")
	settings, err := os.ReadFile(filepath.Join(pkg, "settings.py"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(settings), "ALLOWED_HOSTS = []", `ALLOWED_HOSTS = ["a.example.test", "b.example.test"]`, 1)
	if s == string(settings) {
		t.Fatal("startproject's settings.py has no ALLOWED_HOSTS = []")
	}
	files := map[string]string{
		"settings.py":   s + "\nSITE_NAME = \"A\"\n",
		"settings_b.py": "from .settings import *  # noqa\n\nSITE_NAME = \"B\"\n",
	}
	urls, err := os.ReadFile(filepath.Join(pkg, "urls.py"))
	if err != nil {
		t.Fatal(err)
	}
	files["urls.py"] = string(urls) + `
from django.conf import settings
from django.http import HttpResponse

urlpatterns.append(path("whoami/", lambda request: HttpResponse(settings.SETTINGS_MODULE + " " + settings.SITE_NAME)))
`
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// whoami asks the gateway for /whoami/ under host.
func whoami(t *testing.T, gw, host string) string {
	t.Helper()
	req, err := http.NewRequest("GET", gw+"/whoami/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /whoami/ Host %s: %d %.300s", host, resp.StatusCode, b)
	}
	return string(b)
}

// checkSites asks both sites in turn, several times: each must answer from its own settings, whichever
// was asked first.
func checkSites(t *testing.T, gw string) {
	t.Helper()
	want := map[string]string{"a.example.test": "portal.settings A", "b.example.test": "portal.settings_b B"}
	for i := 0; i < 3; i++ {
		for _, host := range []string{"b.example.test", "a.example.test"} {
			if got := whoami(t, gw, host); got != want[host] {
				t.Fatalf("round %d: %s answered %q, want %q", i, host, got, want[host])
			}
		}
	}
}

// One app server per settings module, each with DJANGO_SETTINGS_MODULE in its own environment, behind
// host routes: the way that works for every app server.
func TestTwoDjangoSitesOneAppServerPerSettingsModule(t *testing.T) {
	dir := multiSiteProject(t)
	sockA, sockB := testpeer.SocketPath(t, "site-a.sock"), testpeer.SocketPath(t, "site-b.sock")
	testpeer.StartGunicorn(t, dir, "portal.wsgi", "unix:"+sockA, "DJANGO_SETTINGS_MODULE=portal.settings")
	testpeer.StartGunicorn(t, dir, "portal.wsgi", "unix:"+sockB, "DJANGO_SETTINGS_MODULE=portal.settings_b")
	gw, _, _ := startGateway(t, map[string]string{
		"GATEWAY_ROUTES": "a.example.test/=unix://" + sockA + ",b.example.test/=unix://" + sockB,
	})
	checkSites(t, gw.URL)
}

// One uWSGI in vhost mode serves both sites, each route naming its app with UWSGI_* variables: uWSGI
// loads each app in its own Python interpreter, from the module UWSGI_SCRIPT names, in the directory
// UWSGI_CHDIR names. Each settings module gets a wsgi module that assigns DJANGO_SETTINGS_MODULE
// (Django's advice for several sites in one process): startproject's setdefault would take whatever an
// app loaded before left in the process environment, and UWSGI_SETENV cannot stand in for it, since the
// first app loaded runs in the main interpreter, whose os.environ was read before any request. UWSGI_APPID
// keys the app by route, not by the Host header: a client varying case or port never makes uWSGI load
// another interpreter.
func TestTwoDjangoSitesOneUWSGIInVhostMode(t *testing.T) {
	dir := multiSiteProject(t)
	for name, settings := range map[string]string{"wsgi_a.py": "portal.settings", "wsgi_b.py": "portal.settings_b"} {
		src := "import os\n\nfrom django.core.wsgi import get_wsgi_application\n\n" +
			"os.environ[\"DJANGO_SETTINGS_MODULE\"] = \"" + settings + "\"\n\napplication = get_wsgi_application()\n"
		if err := os.WriteFile(filepath.Join(dir, "portal", name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := testpeer.NeedUWSGI(t)
	sock := testpeer.SocketPath(t, "vhost.sock")
	p := testpeer.Start(t, dir, []string{"PYTHONDONTWRITEBYTECODE=1"}, bin,
		"--plugin", "python3", "--die-on-term", "--processes", "1", "--buffer-size", "65535",
		"--vhost", "--socket", sock)
	testpeer.WaitDial(t, p, "unix", sock, testpeer.PeerStartTimeout)
	route := func(host, appID, module string) string {
		q := url.Values{
			"param.UWSGI_APPID":  {appID},
			"param.UWSGI_CHDIR":  {dir},
			"param.UWSGI_SCRIPT": {module},
		}
		return host + "/=uwsgi+unix://" + sock + "?" + q.Encode()
	}
	gw, g, _ := startGateway(t, map[string]string{
		"GATEWAY_ROUTES": route("a.example.test", "site-a", "portal.wsgi_a") + "," + route("b.example.test", "site-b", "portal.wsgi_b"),
	})
	if len(g.Warnings) != 0 {
		t.Errorf("warnings for the working setup: %q", g.Warnings)
	}
	checkSites(t, gw.URL)
	for _, host := range []string{"A.EXAMPLE.TEST", "a.example.test:8080", "a.example.test."} {
		if got := whoami(t, gw.URL, host); got != "portal.settings A" {
			t.Fatalf("Host %s answered %q", host, got)
		}
	}
	if out := p.Output(); !strings.Contains(out, "WSGI app 1") || strings.Contains(out, "WSGI app 2") {
		t.Fatalf("uWSGI should have loaded exactly two apps (one interpreter per site):\n%s", out)
	}
}

// The trap the warning is about: param.DJANGO_SETTINGS_MODULE lands in the WSGI environ, which Django
// never reads for its settings, so both routes get the settings the process started with. The gateway
// warns about it.
func TestParamDjangoSettingsModuleDoesNothingAndWarns(t *testing.T) {
	dir := multiSiteProject(t)
	peer := testpeer.StartUWSGI(t, testpeer.UWSGI{Dir: dir, App: []string{"--module", "portal.wsgi"}, Env: []string{"PYTHONDONTWRITEBYTECODE=1"}})
	uw := "uwsgi+unix://" + peer.Addr
	gw, g, _ := startGateway(t, map[string]string{
		"GATEWAY_ROUTES": "a.example.test/=" + uw + ",b.example.test/=" + uw + "?param.DJANGO_SETTINGS_MODULE=portal.settings_b",
	})
	if got := whoami(t, gw.URL, "b.example.test"); got != "portal.settings A" {
		t.Fatalf("b.example.test answered %q: the param did something after all", got)
	}
	if len(g.Warnings) != 1 || !strings.Contains(g.Warnings[0], "param.DJANGO_SETTINGS_MODULE does nothing") {
		t.Fatalf("warnings %q", g.Warnings)
	}
}
