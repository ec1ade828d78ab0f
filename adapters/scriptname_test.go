package adapters

import (
	"net/http"
	"strings"
	"testing"
)

// mountRegistry has a mount-aware kind whose factory reports the SCRIPT_NAME it was given, and an HTTP kind.
func mountRegistry(got *string) *Registry {
	r := NewRegistry(nil)
	r.MustRegister(Kind{Schemes: []string{"uwsgi"}, MountAware: true, Summary: "uwsgi",
		Factory: func(t Target) (http.Handler, error) { *got = t.Mount; return http.NotFoundHandler(), nil }})
	r.MustRegister(Kind{Schemes: []string{"http"}, Summary: "http",
		Factory: func(t Target) (http.Handler, error) { return http.NotFoundHandler(), nil }})
	return r
}

func TestScriptNameOption(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		mount    string
		fullPath bool
		want     string // the SCRIPT_NAME the factory sees
		wantErr  string
	}{
		{name: "by default a mount-aware app gets the route's mount", raw: "uwsgi://a:1", mount: "/shop", want: "/shop"},
		{name: "an old app (full path) gets an empty SCRIPT_NAME", raw: "uwsgi://a:1", mount: "/shop", fullPath: true, want: ""},
		{name: "an empty script_name gives the full path on a route", raw: "uwsgi://a:1?script_name=", mount: "/shop", want: ""},
		{name: "script_name=/ is the empty value", raw: "uwsgi://a:1?script_name=/", mount: "/shop", want: ""},
		{name: "an old app can ask for the route's mount back", raw: "uwsgi://a:1?script_name=/shop", mount: "/shop", fullPath: true, want: "/shop"},
		{name: "a shorter prefix at a segment boundary is taken", raw: "uwsgi://a:1?script_name=/shop/", mount: "/shop/eu", want: "/shop"},
		{name: "a prefix inside a segment is refused", raw: "uwsgi://a:1?script_name=/sho", mount: "/shop", wantErr: `prefix of the route's prefix "/shop/"`},
		{name: "a path outside the mount is refused", raw: "uwsgi://a:1?script_name=/blog", mount: "/shop", wantErr: `script_name="/blog"`},
		{name: "a non-empty value at the root is refused", raw: "uwsgi://a:1?script_name=/shop", mount: "", wantErr: "the root, where this app is mounted"},
		{name: "a relative value is refused", raw: "uwsgi://a:1?script_name=shop", mount: "/shop", wantErr: "a clean path such as /shop"},
		{name: "dot segments are refused", raw: "uwsgi://a:1?script_name=/shop/..", mount: "/shop", wantErr: "a clean path such as /shop"},
		{name: "an HTTP app refuses the option", raw: "http://a:1?script_name=", mount: "/shop", wantErr: "applies only to mount-aware apps (the CGI family and file), not to http apps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := "(factory not called)"
			r := mountRegistry(&got)
			tg, _, err := r.Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			tg.Mount, tg.FullPath = tt.mount, tt.fullPath
			_, err = r.Build(tg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Build(%q) error = %v, want one containing %q", tt.raw, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("SCRIPT_NAME = %q, want %q", got, tt.want)
			}
		})
	}
}
