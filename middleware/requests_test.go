package middleware

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App", "app")
		w.Header().Set("Server", "secret/1.0")
		io.WriteString(w, "req:"+r.Header.Get("X-Set")+"|"+strings.Join(r.Header.Values("X-Add"), ",")+"|"+r.Header.Get("X-Gone"))
	})
	mw := Headers(
		HeaderRules{Set: map[string]string{"X-Set": "gw"}, Add: map[string]string{"X-Add": "gw"}, Remove: []string{"X-Gone"}},
		HeaderRules{Set: map[string]string{"X-App": "gw"}, Add: map[string]string{"X-Extra": "1"}, Remove: []string{"Server"}},
	)
	resp, body := do(t, "GET", serve(t, mw, app), map[string]string{"X-Set": "client", "X-Add": "client", "X-Gone": "x"}, nil)
	if body != "req:gw|client,gw|" {
		t.Errorf("app saw %q", body)
	}
	if resp.Header.Get("X-App") != "gw" || len(resp.Header.Values("X-App")) != 1 || resp.Header.Get("X-Extra") != "1" || resp.Header.Get("Server") != "" {
		t.Errorf("response headers %v", resp.Header)
	}
}

func TestRedirect(t *testing.T) {
	tests := []struct {
		name     string
		opts     RedirectOptions
		path     string
		hdr      map[string]string
		status   int
		location string
	}{
		{"a fixed target", RedirectOptions{To: "https://example.com/"}, "/a", nil, 302, "https://example.com/"},
		{"placeholders", RedirectOptions{To: "https://$host$path$query", Status: 301}, "/a/b?x=1", map[string]string{"Host": "h.example"}, 301, "https://h.example/a/b?x=1"},
		{"the prefix form appends the rest and the query", RedirectOptions{From: "/old", To: "/new", Status: 308}, "/old/x?q=1", nil, 308, "/new/x?q=1"},
		{"the prefix form on the prefix itself", RedirectOptions{From: "/old/", To: "/new/"}, "/old", nil, 302, "/new"},
		{"paths outside the prefix go to the app", RedirectOptions{From: "/old", To: "/new"}, "/older", nil, 200, ""},
		{"$rest is the path below from", RedirectOptions{From: "/old", To: "/n$rest"}, "/old/p", nil, 302, "/n/p"},
		{"$scheme follows a trusted proxy", RedirectOptions{To: "$scheme://x$path", Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, "/p", map[string]string{"X-Forwarded-Proto": "https"}, 302, "https://x/p"},
		{"$scheme ignores an untrusted claim", RedirectOptions{To: "$scheme://x$path"}, "/p", map[string]string{"X-Forwarded-Proto": "https"}, 302, "http://x/p"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, mustMW(t)(Redirect(tt.opts)), okApp("app"))
			resp, _ := do(t, "GET", url+tt.path, tt.hdr, nil)
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
			}
		})
	}
	if _, err := Redirect(RedirectOptions{To: "/x", Status: 200}); err == nil {
		t.Error("status 200 accepted")
	}
}

func TestRewrite(t *testing.T) {
	tests := []struct {
		name   string
		opts   RewriteOptions
		path   string
		status int
		want   string
	}{
		{"a prefix is replaced", RewriteOptions{Prefix: "/old", To: "/new"}, "/old/a?q=1", 200, "/new/a?q=1"},
		{"the prefix itself", RewriteOptions{Prefix: "/old", To: "/new"}, "/old", 200, "/new"},
		{"a path outside the prefix is unchanged", RewriteOptions{Prefix: "/old", To: "/new"}, "/oldish", 200, "/oldish"},
		{"a prefix to the root", RewriteOptions{Prefix: "/api", To: "/"}, "/api/users", 200, "/users"},
		{"a regexp with submatches", RewriteOptions{Regexp: regexp.MustCompile(`^/u/(\d+)$`), To: "/users/$1"}, "/u/42", 200, "/users/42"},
		{"the result is cleaned again", RewriteOptions{Regexp: regexp.MustCompile(`^/x/(.*)$`), To: "/a/../$1"}, "/x/b", 200, "/b"},
		{"a result cleaning refuses is 400", RewriteOptions{Regexp: regexp.MustCompile(`^/x$`), To: "/a%2fb"}, "/x", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, mustMW(t)(Rewrite(tt.opts)), echoApp())
			resp, body := do(t, "GET", url+tt.path, nil, nil)
			if resp.StatusCode != tt.status || tt.status == 200 && body != tt.want {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	called := 0
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		called++
		b, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "cut", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "read "+string(rune('0'+len(b))))
	})
	url := serve(t, BodyLimit(5), app)
	tests := []struct {
		name    string
		body    io.Reader
		status  int
		reaches bool
	}{
		{"a small declared body passes", strings.NewReader("abc"), 200, true},
		{"a declared larger body is refused before the app", strings.NewReader("abcdefgh"), 413, false},
		{"a chunked body is cut at the limit", io.MultiReader(strings.NewReader("abcdefgh")), 413, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			called = 0
			resp, _ := do(t, "POST", url, nil, tt.body)
			if resp.StatusCode != tt.status || (called == 1) != tt.reaches {
				t.Fatalf("got %d, app called %d times", resp.StatusCode, called)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		xff     func(i int) string
		limited int
	}{
		{"one client is cut after its budget", nil, func(int) string { return "" }, 7},
		{"an untrusted client cannot pick its key with X-Forwarded-For", nil, func(i int) string { return "198.51.100." + string(rune('0'+i)) }, 7},
		{"clients behind a trusted proxy are counted apart", loop, func(i int) string { return "198.51.100." + string(rune('0'+i)) }, 0},
		{"one client behind a trusted proxy is cut", loop, func(int) string { return "198.51.100.7" }, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A window of an hour: the budget of 3 cannot refill during the bounded loop, so the count of
			// 429s is exact without any sleep.
			url := serve(t, RateLimit(3, time.Hour, ClientIP{Trusted: tt.trusted}), okApp("ok"))
			limited := 0
			for i := 0; i < 10; i++ {
				hdr := map[string]string{}
				if x := tt.xff(i); x != "" {
					hdr["X-Forwarded-For"] = x
				}
				resp, _ := do(t, "GET", url, hdr, nil)
				switch resp.StatusCode {
				case 200:
				case 429:
					limited++
					if resp.Header.Get("Retry-After") != "3600" {
						t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
					}
				default:
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
			if limited != tt.limited {
				t.Fatalf("%d of 10 requests limited, want %d", limited, tt.limited)
			}
		})
	}
	if n, d, err := ParseRate("100/1m"); n != 100 || d != time.Minute || err != nil {
		t.Errorf("ParseRate: %d %v %v", n, d, err)
	}
	if n, d, err := ParseRate("10/s"); n != 10 || d != time.Second || err != nil {
		t.Errorf("ParseRate: %d %v %v", n, d, err)
	}
	for _, bad := range []string{"", "10", "0/1m", "x/1m", "10/-1s", "10/"} {
		if _, _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestRateLimitRetryAfterIsAtLeastOneSecond(t *testing.T) {
	url := serve(t, RateLimit(1, 50*time.Millisecond, ClientIP{}), okApp("ok"))
	for i := 0; i < 20; i++ {
		if resp, _ := do(t, "GET", url, nil, nil); resp.StatusCode == 429 {
			if resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
			return
		}
	}
	t.Skip("the tiny window refilled between every request (a very slow machine)")
}

func TestIPFilter(t *testing.T) {
	p := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	tests := []struct {
		name        string
		allow, deny []netip.Prefix
		trusted     []netip.Prefix
		xff         string
		status      int
	}{
		{"an allowed client passes", p("127.0.0.0/8"), nil, nil, "", 200},
		{"a client outside the allow list is refused", p("10.0.0.0/8"), nil, nil, "", 403},
		{"deny wins over allow", p("127.0.0.0/8"), p("127.0.0.1/32"), nil, "", 403},
		{"a forged X-Forwarded-For does not pass an allow list", p("10.0.0.0/8"), nil, nil, "10.1.2.3", 403},
		{"behind a trusted proxy the forwarded client counts", p("10.0.0.0/8"), nil, p("127.0.0.0/8"), "10.1.2.3", 200},
		{"behind a trusted proxy a denied client is refused", nil, p("192.0.2.0/24"), p("127.0.0.0/8"), "192.0.2.5", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := serve(t, IPFilter(tt.allow, tt.deny, ClientIP{Trusted: tt.trusted}), okApp("ok"))
			hdr := map[string]string{}
			if tt.xff != "" {
				hdr["X-Forwarded-For"] = tt.xff
			}
			if resp, _ := do(t, "GET", url, hdr, nil); resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}
