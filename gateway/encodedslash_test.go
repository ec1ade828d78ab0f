package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// The encoded_slash route option reaches the router: "%2F" goes to that route's HTTP app unchanged (with
// strip_prefix too), nowhere else; on the primary the option is an error that says where it belongs.
func TestEncodedSlashOption(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app "+r.RequestURI) }))
	defer app.Close()
	cfg, err := config.Load(map[string]string{"GATEWAY_ROUTES": "/api/=" + app.URL + "?encoded_slash=true&strip_prefix=true,/plain/=" + app.URL, "GATEWAY_ADMIN_ADDR": ""}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	srv := httptest.NewServer(g.Handler)
	defer srv.Close()
	for _, tc := range []struct{ target, want string }{
		{"/api/projects/group%2Fproj?x=1", "200 app /projects/group%2Fproj?x=1"},
		{"/plain/group%2Fproj", "400 400 ambiguous request path"},
	} {
		resp, err := http.Get(srv.URL + tc.target)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.TrimSpace(resp.Status[:3] + " " + string(b)); got != tc.want {
			t.Errorf("GET %s: %q, want %q", tc.target, got, tc.want)
		}
	}
	var found bool
	for _, r := range g.Routes {
		found = found || r.Pattern == "/api/" && r.EncodedSlash
	}
	if !found {
		t.Errorf("route info lacks encoded_slash: %+v", g.Routes)
	}

	cfg, err = config.Load(map[string]string{"GATEWAY_PRIMARY": app.URL + "?encoded_slash=true"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build(cfg, Options{Registry: builtin.Registry(nil, nil)}); err == nil || !strings.Contains(err.Error(), "option encoded_slash applies to routes") {
		t.Errorf("encoded_slash on the primary: %v", err)
	}
}
