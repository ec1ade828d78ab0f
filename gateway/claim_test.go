package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestRouteRecordsWhateverStandsBeforeTheApp checks that a request records its route and app the same
// way (access log, migration ledger) whether the route's one app is called directly (routeHandler's claim)
// or through route middleware or a pass header (annotation and Cascade), and that a pass header is still
// removed from the answer.
func TestRouteRecordsWhateverStandsBeforeTheApp(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Pass", "1")
		io.WriteString(w, "hello")
	})
	cfg, err := config.Load(map[string]string{
		"GATEWAY_PRIMARY": "inproc://app?name=primary",
		"GATEWAY_ROUTES":  "/plain/=inproc://app?name=plain,/mw/=inproc://app?name=mw,/pass/=inproc://app?name=pass&pass_header=X-Pass",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	var mwSaw []string
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, map[string]http.Handler{"app": app}), Logger: logger,
		RouteMiddleware: map[string][]func(http.Handler) http.Handler{"/mw/": {func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mwSaw = append(mwSaw, r.URL.Path)
				h.ServeHTTP(w, r)
			})
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tt := range []struct{ path, route, app, passHeader string }{
		{"/plain/x", "/plain/", "plain", "1"},
		{"/mw/x", "/mw/", "mw", "1"},
		{"/pass/x", "/pass/", "pass", ""},
		{"/elsewhere", "*", "primary", "1"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			w := httptest.NewRecorder()
			g.Handler.ServeHTTP(w, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != http.StatusOK || w.Body.String() != "hello" {
				t.Fatalf("answer %d %q, want 200 hello", w.Code, w.Body)
			}
			if got := w.Header().Get("X-Pass"); got != tt.passHeader {
				t.Errorf("X-Pass %q, want %q", got, tt.passHeader)
			}
			var line string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "path="+tt.path+" ") {
					line = l
				}
			}
			for _, want := range []string{"route=" + tt.route + " ", "app=" + tt.app + " ", "app_duration_ms="} {
				if !strings.Contains(line, want) {
					t.Errorf("access line lacks %q: %s", want, line)
				}
			}
			if strings.Contains(line, "cascade=") {
				t.Errorf("access line names a cascade for one app: %s", line)
			}
		})
	}
	if len(mwSaw) != 1 || mwSaw[0] != "/mw/x" {
		t.Errorf("route middleware saw %q, want [/mw/x]", mwSaw)
	}
	rep := g.Migration.Report()
	counted := map[string]uint64{}
	for _, row := range rep.Ledger {
		for app, n := range row.Answers {
			counted[row.Route+" "+app] += n
		}
	}
	for _, want := range []string{"/plain/ plain", "/mw/ mw", "/pass/ pass", "* primary"} {
		if counted[want] != 1 {
			t.Errorf("ledger counts %d for %q, want 1 (ledger: %v)", counted[want], want, counted)
		}
	}
}
