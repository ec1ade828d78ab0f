package middleware

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestCORS(t *testing.T) {
	mw := mustMW(t)(CORS(CORSOptions{Origins: []string{"https://app.example"}, Methods: []string{"GET", "PUT"}, Headers: []string{"X-Token"}, Expose: []string{"X-Total"}, Credentials: true, MaxAge: time.Hour}))
	reached := false
	url := serve(t, mw, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached = true
		w.Header().Set("Access-Control-Allow-Origin", "*")
		io.WriteString(w, "app")
	}))
	tests := []struct {
		name    string
		method  string
		hdr     map[string]string
		status  int
		allow   string
		reaches bool
	}{
		{"a preflight from an allowed origin is answered by the gateway", "OPTIONS", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "x-token"}, 204, "https://app.example", false},
		{"a preflight for a method not allowed is refused", "OPTIONS", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "DELETE"}, 403, "", false},
		{"a preflight for a header not allowed is refused", "OPTIONS", map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "X-Evil"}, 403, "", false},
		{"a preflight from another origin is refused", "OPTIONS", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}, 403, "", false},
		{"a simple request from an allowed origin gets the origin echoed over the app's", "GET", map[string]string{"Origin": "https://app.example"}, 200, "https://app.example", true},
		{"a request from another origin gets no CORS headers from the gateway", "GET", map[string]string{"Origin": "https://evil.example"}, 200, "*", true},
		{"a plain OPTIONS goes to the app", "OPTIONS", map[string]string{"Origin": "https://app.example"}, 200, "https://app.example", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reached = false
			resp, _ := do(t, tt.method, url, tt.hdr, nil)
			if resp.StatusCode != tt.status || resp.Header.Get("Access-Control-Allow-Origin") != tt.allow || reached != tt.reaches {
				t.Fatalf("got %d allow=%q reached=%v", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"), reached)
			}
			if tt.status == 204 && (resp.Header.Get("Access-Control-Max-Age") != "3600" || resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Allow-Headers") != "X-Token") {
				t.Fatalf("preflight headers %v", resp.Header)
			}
		})
	}
	if _, err := CORS(CORSOptions{Origins: []string{"*"}, Credentials: true}); err == nil {
		t.Error("credentials with * accepted")
	}
}

func TestSecurityHeaders(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Frame-Options", "DENY")
		io.WriteString(w, "app")
	})
	o := DefaultSecurity()
	o.CSP = "default-src 'self'"
	o.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	plain := serve(t, SecurityHeaders(o), app)
	tls := httptest.NewTLSServer(SecurityHeaders(DefaultSecurity())(app))
	defer tls.Close()
	tests := []struct {
		name string
		get  func() *http.Response
		hsts bool
	}{
		{"no HSTS over plain http", func() *http.Response { r, _ := do(t, "GET", plain, nil, nil); return r }, false},
		{"HSTS when a trusted proxy says https", func() *http.Response {
			r, _ := do(t, "GET", plain, map[string]string{"X-Forwarded-Proto": "https"}, nil)
			return r
		}, true},
		{"HSTS over TLS", func() *http.Response {
			r, err := tls.Client().Get(tls.URL)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			return r
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.get().Header
			if (h.Get("Strict-Transport-Security") == "max-age=31536000") != tt.hsts {
				t.Fatalf("HSTS %q", h.Get("Strict-Transport-Security"))
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") == "" {
				t.Fatalf("headers %v", h)
			}
		})
	}
	r, _ := do(t, "GET", plain, nil, nil)
	if r.Header.Get("Content-Security-Policy") != "default-src 'self'" {
		t.Errorf("CSP %q", r.Header.Get("Content-Security-Policy"))
	}
}

func TestTimeout(t *testing.T) {
	// The apps that must beat the deadline answer (or flush, or hijack) at once; a second keeps a loaded
	// machine's scheduling from ever making them late. Only the first case's app waits it out.
	const d = time.Second
	t.Run("an app that has not answered by the deadline gets 504 and a cancelled context", func(t *testing.T) {
		cause := make(chan error, 1)
		url := serve(t, Timeout(d), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Half", "set before the deadline")
			<-r.Context().Done()
			cause <- context.Cause(r.Context())
			if _, err := w.Write([]byte("late")); !errors.Is(err, http.ErrHandlerTimeout) {
				t.Errorf("late write: %v", err)
			}
		}))
		resp, _ := do(t, "GET", url, nil, nil)
		if resp.StatusCode != 504 || resp.Header.Get("X-Half") != "" {
			t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
		if err := <-cause; !errors.Is(err, ErrHeaderTimeout) {
			t.Fatalf("cause %v", err)
		}
	})
	t.Run("a stream that started in time is never cut", func(t *testing.T) {
		url := serve(t, Timeout(d), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: 1\n\n")
			http.NewResponseController(w).Flush()
			// Waiting past the deadline is what this case tests; no signal can stand for elapsed time.
			select {
			case <-time.After(3 * d):
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "data: 2\n\n")
		}))
		resp, body := do(t, "GET", url, nil, nil)
		if resp.StatusCode != 200 || body != "data: 1\n\ndata: 2\n\n" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
	t.Run("a fast app is untouched", func(t *testing.T) {
		url := serve(t, Timeout(d), okApp("fast"))
		if resp, body := do(t, "GET", url, nil, nil); resp.StatusCode != 200 || body != "fast" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
	t.Run("a hijacked connection is left alone", func(t *testing.T) {
		url := serve(t, Timeout(d), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			select {
			case <-time.After(2 * d):
			case <-r.Context().Done():
			}
			rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nraw")
			rw.Flush()
		}))
		resp, body := do(t, "GET", url, nil, nil)
		if resp.StatusCode != 200 || body != "raw" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
}

func TestPrefixRewrite(t *testing.T) {
	loc := []struct{ in, want string }{
		{"/login", "/app/login"},
		{"/", "/app/"},
		{"/app/already", "/app/already"},
		{"/app", "/app"},
		{"/application", "/app/application"},
		{"next", "next"},
		{"//evil.example/x", "//evil.example/x"},
		{"http://gw.example/login?x=1", "http://gw.example/app/login?x=1"},
		{"https://GW.example", "https://GW.example/app/"},
		{"http://other.example/login", "http://other.example/login"},
	}
	for _, c := range loc {
		if got := rewriteLocation("/app", "gw.example", c.in); got != c.want {
			t.Errorf("Location %q -> %q, want %q", c.in, got, c.want)
		}
	}
	cookies := []struct{ in, want string }{
		{"a=1; Path=/", "a=1; Path=/app/"},
		{"a=1; path=/x; HttpOnly", "a=1; Path=/app/x; HttpOnly"},
		{"a=1", "a=1"},
		{"a=1; Path=/app/y", "a=1; Path=/app/y"},
		{"Path=/; b=2", "Path=/; b=2"},
	}
	for _, c := range cookies {
		if got := rewriteCookiePath("/app", c.in); got != c.want {
			t.Errorf("Set-Cookie %q -> %q, want %q", c.in, got, c.want)
		}
	}
	url := serve(t, PrefixRewrite("/app/"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "s", Value: "1", Path: "/"})
		http.Redirect(w, r, "/login", http.StatusFound)
	}))
	resp, _ := do(t, "GET", url, nil, nil)
	if resp.Header.Get("Location") != "/app/login" || resp.Header.Get("Set-Cookie") != "s=1; Path=/app/" {
		t.Fatalf("headers %v", resp.Header)
	}
}
