package gateway

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/reqinfo"
)

// A cascade=true route records the app that answered (the access log's app field) even when nothing
// follows it, and the build warns that such a cascade has nowhere to go.
func TestACascadeRouteWithoutAChainNamesItsApp(t *testing.T) {
	cfg, err := config.Load(map[string]string{"GATEWAY_ROUTES": "/x/=status:404?cascade=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var app string
	logger := slog.New(slog.DiscardHandler)
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger,
		Observe: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				next.ServeHTTP(w, r)
				app = reqinfo.From(r.Context()).Snapshot().App
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := httptest.NewRecorder()
	g.Handler.ServeHTTP(w, httptest.NewRequest("GET", "/x/a", nil))
	if w.Code != 404 || app != "status:404" {
		t.Fatalf("status %d, app %q; want 404 from status:404", w.Code, app)
	}
	if len(g.Warnings) != 1 || !strings.Contains(g.Warnings[0], "no primary or delegate to fall through to") {
		t.Fatalf("warnings %q", g.Warnings)
	}
}

// A key of another stage is kept and ignored with a warning, so moving between stages is one edit.
func TestKeysOfAnotherStageAreIgnoredWithAWarning(t *testing.T) {
	cfg, err := config.Load(map[string]string{
		"GATEWAY_PRIMARY": "status:404",
		"GATEWAY_ROUTES":  "/shop/=status:200?stage=primary&old=status%3A201&canary=5&shadow_ignore=%24.ts",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var got []string
	for _, w := range g.Warnings {
		if strings.Contains(w, "another stage") {
			got = append(got, w)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "canary (canary_percent in the file)") || !strings.Contains(got[1], "shadow_ignore") || !strings.Contains(got[0], "stage primary") {
		t.Fatalf("warnings %q", got)
	}
}

// A size under 1 KiB is probably a missing unit: the build warns, naming the variable.
func TestATinySizeWarns(t *testing.T) {
	cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": "status:404", "GATEWAY_MAX_BODY_SIZE": "10", "GATEWAY_MAX_HEADER_SIZE": "8KiB"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var got []string
	for _, w := range g.Warnings {
		if strings.Contains(w, "without a unit") {
			got = append(got, w)
		}
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "GATEWAY_MAX_BODY_SIZE=10 is 10 bytes") {
		t.Fatalf("warnings %q", got)
	}
}
