package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestAppsAreNamedByAShortLabelEverywhere checks that the access log, the route table, the admin's app
// list and the migration report name an app by its name option or its address, never by its options.
func TestAppsAreNamedByAShortLabelEverywhere(t *testing.T) {
	hello := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") }
	primary, newApp, oldApp := httptest.NewServer(http.HandlerFunc(hello)), httptest.NewServer(http.HandlerFunc(hello)), httptest.NewServer(http.HandlerFunc(hello))
	defer primary.Close()
	defer newApp.Close()
	defer oldApp.Close()
	cfg, err := config.Load(map[string]string{
		"GATEWAY_PRIMARY": primary.URL + "?timeout=5s",
		"GATEWAY_ROUTES":  "/shop/=" + newApp.URL + "?name=shop-new&stage=canary&canary=100&old=" + url.QueryEscape(oldApp.URL+"?timeout=3s"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	front := httptest.NewServer(g.Handler)
	defer front.Close()
	for _, p := range []string{"/shop/x", "/other"} {
		resp, err := http.Get(front.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	primaryLabel, oldLabel := strings.TrimPrefix(primary.URL, "http://"), strings.TrimPrefix(oldApp.URL, "http://")
	log := logs.String()
	for _, want := range []string{"path=/shop/x", "app=shop-new", "path=/other", "app=" + primaryLabel + " "} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %q:\n%s", want, log)
		}
	}
	names := map[string]bool{}
	for _, a := range g.Apps {
		names[a.Name] = true
	}
	for _, r := range g.Routes {
		if r.Name == "" || strings.Contains(r.Name, "?") {
			t.Errorf("route %s is named %q", r.Pattern, r.Name)
		}
	}
	for _, want := range []string{"shop-new", primaryLabel, oldLabel} {
		if !names[want] {
			t.Errorf("apps %v lack %q", names, want)
		}
	}
	for _, r := range g.Migration.Report().Routes {
		for _, a := range r.Apps {
			if strings.ContainsAny(a.App, "?&=") {
				t.Errorf("report names an app %q in route %s", a.App, r.Pattern)
			}
		}
		if r.Pattern == "/shop/" && (r.New != "shop-new" || r.Old != oldLabel) {
			t.Errorf("report route /shop/ new=%q old=%q; want shop-new and %s", r.New, r.Old, oldLabel)
		}
	}
}

func TestANewAndAnOldAppOfOneNameAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"a route", map[string]string{"GATEWAY_ROUTES": "/shop/=http://127.0.0.1:3000?stage=shadow&old=" + url.QueryEscape("http://127.0.0.1:3000?timeout=5s")},
			`the new app and the old app are both named "127.0.0.1:3000": give one a name= option`},
		{"the primary/delegate pair", map[string]string{"GATEWAY_PRIMARY": "http://127.0.0.1:3000", "GATEWAY_DELEGATES": "http://127.0.0.1:3000?timeout=5s", "GATEWAY_STAGE": "shadow"},
			`the primary (the new app) and the first delegate (the old app) are both named "127.0.0.1:3000"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Load(tc.env, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
		})
	}
	// A name option tells them apart.
	cfg, err := config.Load(map[string]string{"GATEWAY_ROUTES": "/shop/=http://127.0.0.1:3000?name=shop-v2&stage=shadow&old=" + url.QueryEscape("http://127.0.0.1:3000?timeout=5s")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
}
