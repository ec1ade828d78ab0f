package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestInProcessAppsMountedFromGoCode embeds the gateway as a library: a chi app and a stdlib app, registered
// as inproc:// apps, composed with the same configuration model the binary reads from the environment.
func TestInProcessAppsMountedFromGoCode(t *testing.T) {
	chiApp := chi.NewRouter()
	chiApp.Get("/api/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "chi user %s prefix=%q", chi.URLParam(r, "id"), r.Header.Get("X-Forwarded-Prefix"))
	})
	std := http.NewServeMux()
	std.HandleFunc("GET /legacy/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "stdlib %s", r.PathValue("rest"))
	})
	cfg, err := config.Load(map[string]string{
		"GATEWAY_PRIMARY": "inproc://legacy",
		"GATEWAY_ROUTES":  "/v2/=inproc://new?strip_prefix=true",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := builtin.Registry(nil, map[string]http.Handler{"new": chiApp, "legacy": std})
	g, err := Build(cfg, Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler)
	defer srv.Close()
	for _, tc := range []struct{ path, want string }{
		{"/v2/api/users/7", `chi user 7 prefix="/v2"`},
		{"/legacy/orders/1", "stdlib orders/1"},
	} {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != tc.want {
			t.Errorf("GET %s = %d %q, want %q", tc.path, resp.StatusCode, b, tc.want)
		}
	}
	if _, err := Build(cfg, Options{Registry: builtin.Registry(nil, map[string]http.Handler{"new": chiApp})}); err == nil {
		t.Fatal("a missing in-process app built without error")
	}
}
