package cgienv

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzBuildHeaderTrust gives Build requests with arbitrary header names and values and checks the
// security contract: a header only ever becomes an HTTP_[A-Z0-9_]+ variable, never HTTP_PROXY (httpoxy,
// CVE-2016-5385) nor anything from a name holding '_' (X_Forwarded_For would alias X-Forwarded-For), and
// the variables the gateway derives (SCRIPT_NAME, PATH_INFO, HTTP_HOST, CONTENT_LENGTH, REMOTE_ADDR, ...)
// keep the values the request and the mount give them, whatever the headers say.
func FuzzBuildHeaderTrust(f *testing.F) {
	for _, s := range [][2]string{
		{"Proxy", "http://evil:3128"}, {"SCRIPT_NAME", "/evil"}, {"X_Forwarded_For", "6.6.6.6"}, {"Script-Name", "/evil"},
		{"Host", "evil.test"}, {"Content-Length", "99"}, {"X-Forwarded-Proto", "https"}, {"Path-Info", "/x"}, {"Uwsgi-Script", "x"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		r := httptest.NewRequest("POST", "http://gw.test/app/x?q=1", strings.NewReader("hello"))
		r.RemoteAddr = "192.0.2.1:4000"
		r.Header[name] = []string{value}
		s := SplitMount(r.URL.Path, "/app")
		vars := map[string]string{}
		for _, p := range Build(r, s, nil) {
			if _, dup := vars[p.Name]; dup {
				t.Fatalf("header %q: variable %s twice", name, p.Name)
			}
			vars[p.Name] = p.Value
			if !strings.HasPrefix(p.Name, "HTTP_") {
				continue
			}
			for i := 5; i < len(p.Name); i++ {
				c := p.Name[i]
				if !(c == '_' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
					t.Fatalf("header %q became variable %q", name, p.Name)
				}
			}
		}
		if _, ok := vars["HTTP_PROXY"]; ok {
			t.Fatalf("header %q set HTTP_PROXY (httpoxy)", name)
		}
		if strings.Contains(name, "_") {
			for k := range vars {
				if k == headerVar(name) {
					t.Fatalf("underscore header %q became %s", name, k)
				}
			}
		}
		for k, want := range map[string]string{"SCRIPT_NAME": "/app", "PATH_INFO": "/x", "HTTP_HOST": "gw.test",
			"CONTENT_LENGTH": "5", "REMOTE_ADDR": "192.0.2.1", "REQUEST_METHOD": "POST", "QUERY_STRING": "q=1"} {
			if vars[k] != want {
				t.Fatalf("header %q=%q changed %s to %q (want %q)", name, value, k, vars[k], want)
			}
		}
		if name != "X-Forwarded-Proto" && http.CanonicalHeaderKey(name) != "X-Forwarded-Proto" && vars["REQUEST_SCHEME"] != "http" {
			t.Fatalf("header %q changed REQUEST_SCHEME to %q", name, vars["REQUEST_SCHEME"])
		}
	})
}
