package fastcgi

import (
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters"
)

// assetRoot builds a front-controller document root with assets next to its scripts.
func assetRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range map[string]string{
		"index.php":                 "<?php // front controller",
		"info.php":                  "<?php // a script",
		"css/site.css":              "body{color:red}",
		"css/site.css.br":           "BROTLI",
		"js/app.3f9a2c1b8d0e.js":    "console.log(1)",
		"img/logo.png":              "\x89PNG\r\n\x1a\nfake",
		"uploads/evil.jpg":          "GIF89a<?php echo 'EVIL';",
		"uploads/evil.php.jpg":      "<?php echo 'EVIL';",
		".env":                      "SECRET=1",
		"uploads/.htaccess":         "deny from all",
		"Legacy.PHP":                "<?php echo 'SOURCE';",
		"docs/readme.txt/extra.txt": "a directory named like a file",
	} {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestStaticFilesBelowTheRoot(t *testing.T) {
	root := assetRoot(t)
	_, app := serveFCGI(t, "unix", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Ran", "front controller")
		io.WriteString(w, "ran")
	}))
	_, srv, _ := gateway(t, app+"?root="+root, "/php")
	_, off, _ := gateway(t, app+"?root="+root+"&static=false", "/php")

	do := func(t *testing.T, base, method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, body := get(t, req)
		return resp, string(body)
	}

	tests := []struct {
		name   string
		off    bool // through the app with static=false
		method string
		path   string
		hdr    map[string]string
		status int
		body   string            // exact body; "ran" means the front controller answered
		want   map[string]string // response headers (a value "*" means present)
	}{
		{name: "a stylesheet is served from disk with the file adapter's headers", path: "/php/css/site.css", status: 200, body: "body{color:red}",
			want: map[string]string{"Content-Type": "text/css; charset=utf-8", "ETag": "*", "Last-Modified": "*", "Cache-Control": "public, max-age=0, must-revalidate", "Vary": "Accept-Encoding", "X-Content-Type-Options": "nosniff"}},
		{name: "a precompressed sibling is chosen by Accept-Encoding", path: "/php/css/site.css", hdr: map[string]string{"Accept-Encoding": "br"}, status: 200, body: "BROTLI",
			want: map[string]string{"Content-Encoding": "br", "Content-Type": "text/css; charset=utf-8"}},
		{name: "a range is answered 206", path: "/php/css/site.css", hdr: map[string]string{"Range": "bytes=0-3"}, status: 206, body: "body"},
		{name: "a content-hashed script file is immutable", path: "/php/js/app.3f9a2c1b8d0e.js", status: 200, body: "console.log(1)",
			want: map[string]string{"Cache-Control": "public, max-age=31536000, immutable"}},
		{name: "an image is served", path: "/php/img/logo.png", status: 200, body: "\x89PNG\r\n\x1a\nfake", want: map[string]string{"Content-Type": "image/png"}},
		{name: "an upload holding PHP code is sent as bytes", path: "/php/uploads/evil.jpg", status: 200, body: "GIF89a<?php echo 'EVIL';"},
		{name: "an upload named .php.jpg is sent as bytes", path: "/php/uploads/evil.php.jpg", status: 200, body: "<?php echo 'EVIL';"},
		{name: "HEAD of an asset has the headers and no body", method: "HEAD", path: "/php/css/site.css", status: 200, body: "", want: map[string]string{"Content-Length": "15"}},
		{name: "a POST to an asset is 405 as with file://", method: "POST", path: "/php/css/site.css", status: 405, want: map[string]string{"Allow": "GET, HEAD"}},
		{name: "a script still runs", path: "/php/info.php", status: 200, body: "ran"},
		{name: "a path that names no file goes to the front controller", path: "/php/blog/2024/hello", status: 200, body: "ran"},
		{name: "a dotfile is never served: the front controller answers", path: "/php/.env", status: 200, body: "ran"},
		{name: "a dotfile in a directory is never served", path: "/php/uploads/.htaccess", status: 200, body: "ran"},
		{name: "a file ending in the extension in another case is never served as source", path: "/php/Legacy.PHP", status: 200, body: "ran"},
		{name: "a file with a trailing slash goes to the front controller", path: "/php/css/site.css/", status: 200, body: "ran"},
		{name: "a path below a file goes to the front controller", path: "/php/uploads/evil.jpg/x", status: 200, body: "ran"},
		{name: "a .php segment below an upload stays 404", path: "/php/uploads/evil.jpg/x.php", status: 404},
		{name: "a .php segment below a .php.jpg upload stays 404", path: "/php/uploads/evil.php.jpg/x.php", status: 404},
		{name: "static=false sends an asset to the front controller", off: true, path: "/php/css/site.css", status: 200, body: "ran"},
		{name: "static=false sends an upload to the front controller", off: true, path: "/php/uploads/evil.jpg", status: 200, body: "ran"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base, method := srv.URL, tt.method
			if tt.off {
				base = off.URL
			}
			if method == "" {
				method = "GET"
			}
			resp, body := do(t, base, method, tt.path, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %q", resp.StatusCode, tt.status, body)
			}
			if tt.status != 404 && tt.status != 405 && body != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
			if tt.body == "ran" && resp.Header.Get("X-Ran") == "" {
				t.Fatalf("the front controller did not answer: %v", resp.Header)
			}
			if tt.body != "ran" && resp.Header.Get("X-Ran") != "" {
				t.Fatalf("the app ran for a static file")
			}
			for k, v := range tt.want {
				got := resp.Header.Get(k)
				if v == "*" && got == "" || v != "*" && got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("a revalidation with the ETag is 304", func(t *testing.T) {
		resp, _ := do(t, srv.URL, "GET", "/php/css/site.css", nil)
		again, body := do(t, srv.URL, "GET", "/php/css/site.css", map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if again.StatusCode != 304 || body != "" {
			t.Fatalf("status %d body %q, want 304", again.StatusCode, body)
		}
	})
	t.Run("an asset added after the start is served", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(root, "css", "new.css"), []byte("p{}"), 0o644); err != nil {
			t.Fatal(err)
		}
		if resp, body := do(t, srv.URL, "GET", "/php/css/new.css", nil); resp.StatusCode != 200 || body != "p{}" {
			t.Fatalf("status %d body %q", resp.StatusCode, body)
		}
	})
	t.Run("a symlink out of the root is never served", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "secret.txt")
		if err := os.WriteFile(outside, []byte("SECRET"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(root, "css", "leak.css")); err != nil {
			t.Fatal(err)
		}
		resp, body := do(t, srv.URL, "GET", "/php/css/leak.css", nil)
		if strings.Contains(body, "SECRET") || resp.Header.Get("X-Ran") == "" {
			t.Fatalf("status %d body %q: want the front controller, never the file", resp.StatusCode, body)
		}
	})
}

func TestRootMustExistWhenTheGatewayChecksFiles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, query, wantErr string
	}{
		{name: "a missing root is refused", query: "root=/nonexistent/www", wantErr: `option root="/nonexistent/www": no such file or directory`},
		{name: "a root that is a file is refused", query: "root=" + file, wantErr: `option root="` + file + `": not a directory`},
		{name: "a missing root is accepted without check_file (PHP-FPM elsewhere)", query: "root=/nonexistent/www&check_file=false"},
		{name: "static files need check_file", query: "root=/nonexistent/www&check_file=false&static=true", wantErr: "static=true needs check_file=true"},
		{name: "static needs root", query: "static=false", wantErr: "option static needs root"},
		{name: "cache_control needs static files", query: "root=/&static=false&cache_control=no-store", wantErr: "option cache_control applies to static files"},
		{name: "cache_control is taken with static files", query: "root=/&cache_control=no-store&immutable_max_age=1h"},
		{name: "a bad immutable_max_age is refused", query: "root=/&immutable_max_age=soon", wantErr: "immutable_max_age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := buildApp(t, "fastcgi://127.0.0.1:9000?"+tt.query)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// buildApp builds app through a registry as the gateway does, closing it at the end of the test.
func buildApp(t *testing.T, app string) (*Handler, error) {
	t.Helper()
	reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
	reg.MustRegister(Kind())
	tgt, _, err := reg.Parse(app)
	if err != nil {
		t.Fatal(err)
	}
	h, err := reg.Build(tgt)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { h.(*Handler).Close() })
	return h.(*Handler), nil
}
