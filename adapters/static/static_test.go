package static

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
)

// build makes the app through a registry, as the gateway does.
func build(t *testing.T, raw, mount string) http.Handler {
	t.Helper()
	reg := adapters.NewRegistry(nil)
	reg.MustRegister(Kind())
	tgt, _, err := reg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	tgt.Mount = mount
	h, err := reg.Build(tgt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.(*Handler).Close() })
	return h
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fixture returns a site directory with an outside directory next to it and symlinks pointing out.
func fixture(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	site := filepath.Join(base, "site")
	writeTree(t, filepath.Join(base, "outside"), map[string]string{"secret.txt": "top secret"})
	writeTree(t, site, map[string]string{
		"index.html":         "<h1>home</h1>",
		"app.3f9a2c1b.js":    "console.log(1)",
		"app.js":             "console.log(2)",
		"style.css":          "body{color:red}",
		"style.css.br":       "BROTLI-BYTES",
		"style.css.zst":      "ZSTD-BYTES",
		"style.css.gz":       "GZIP-BYTES-0123456789",
		"plain.txt":          "0123456789abcdefghij",
		"noext":              "<html><body>sniff me</body></html>",
		"sub/file.txt":       "in sub",
		"sub/b.txt":          "b",
		"sub/<x>&.txt":       "odd name",
		"docs/default.htm":   "docs default",
		".env":               "SECRET=1",
		".git/config":        "[core]",
		".well-known/x.txt":  "well known",
		"inside-link-target": "reached via an inside symlink",
	})
	must(t, os.Symlink(filepath.Join(base, "outside", "secret.txt"), filepath.Join(site, "escape.txt")))
	must(t, os.Symlink(filepath.Join(base, "outside"), filepath.Join(site, "escapedir")))
	must(t, os.Symlink("../outside/secret.txt", filepath.Join(site, "relescape.txt")))
	must(t, os.Symlink("inside-link-target", filepath.Join(site, "inside-link.txt")))
	return site
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type exchange struct {
	method  string
	path    string
	header  map[string]string
	status  int
	body    string            // exact body when non-empty
	want    map[string]string // exact header values; "" means the header must be absent
	contain string            // body substring
}

func run(t *testing.T, srv *httptest.Server, tc exchange) *http.Response {
	t.Helper()
	method := tc.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, srv.URL+tc.path, nil)
	must(t, err)
	for k, v := range tc.header {
		req.Header.Set(k, v)
	}
	client := &http.Client{
		Transport:     &http.Transport{DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != tc.status {
		t.Fatalf("%s %s: status %d, want %d; body %q", method, tc.path, resp.StatusCode, tc.status, b)
	}
	if tc.body != "" && string(b) != tc.body {
		t.Errorf("%s %s: body %q, want %q", method, tc.path, b, tc.body)
	}
	if tc.contain != "" && !strings.Contains(string(b), tc.contain) {
		t.Errorf("%s %s: body %q does not contain %q", method, tc.path, b, tc.contain)
	}
	for k, v := range tc.want {
		if got := strings.Join(resp.Header.Values(k), ", "); got != v {
			t.Errorf("%s %s: header %s = %q, want %q", method, tc.path, k, got, v)
		}
	}
	return resp
}

func TestServing(t *testing.T) {
	site := fixture(t)
	srv := httptest.NewServer(build(t, "file://"+site, "/static"))
	defer srv.Close()

	tests := []struct {
		name string
		exchange
	}{
		{"a plain file is served with its type and the default cache policy", exchange{path: "/static/plain.txt", status: 200,
			body: "0123456789abcdefghij", want: map[string]string{"Content-Type": "text/plain; charset=utf-8",
				"Cache-Control": DefaultCacheControl, "Accept-Ranges": "bytes", "Content-Length": "20", "Vary": ""}}},
		{"the mount alone redirects to the mount with a slash", exchange{path: "/static", status: 301,
			want: map[string]string{"Location": "/static/"}}},
		{"the mount with a slash serves index.html", exchange{path: "/static/", status: 200, body: "<h1>home</h1>"}},
		{"a directory without a slash redirects keeping the query", exchange{path: "/static/sub?a=1&b=2", status: 301,
			want: map[string]string{"Location": "/static/sub/?a=1&b=2"}}},
		{"a directory without an index and listing off is 404", exchange{path: "/static/sub/", status: 404}},
		{"a file with a trailing slash is 404", exchange{path: "/static/plain.txt/", status: 404}},
		{"a missing file is 404", exchange{path: "/static/nope.txt", status: 404}},
		{"a path outside the mount is 404", exchange{path: "/other/plain.txt", status: 404}},
		{"a dot-dot segment is 404", exchange{path: "/static/../site/plain.txt", status: 404}},
		{"a dot-dot segment that the router failed to clean is 404", exchange{path: "/static/sub/../../outside/secret.txt", status: 404}},
		{"a symlink to a file outside the root is 404", exchange{path: "/static/escape.txt", status: 404}},
		{"a relative symlink climbing out of the root is 404", exchange{path: "/static/relescape.txt", status: 404}},
		{"a file below a symlinked outside directory is 404", exchange{path: "/static/escapedir/secret.txt", status: 404}},
		{"a symlink inside the root is followed", exchange{path: "/static/inside-link.txt", status: 200, body: "reached via an inside symlink"}},
		{"a dotfile is 404", exchange{path: "/static/.env", status: 404}},
		{"a file in a dot directory is 404", exchange{path: "/static/.git/config", status: 404}},
		{"a file without extension has its type sniffed", exchange{path: "/static/noext", status: 200,
			want: map[string]string{"Content-Type": "text/html; charset=utf-8"}}},
		{"a hashed name is immutable", exchange{path: "/static/app.3f9a2c1b.js", status: 200,
			want: map[string]string{"Cache-Control": "public, max-age=31536000, immutable"}}},
		{"an unhashed name is not immutable", exchange{path: "/static/app.js", status: 200,
			want: map[string]string{"Cache-Control": DefaultCacheControl}}},
		{"POST is 405 with Allow", exchange{method: "POST", path: "/static/plain.txt", status: 405,
			want: map[string]string{"Allow": "GET, HEAD"}}},
		{"HEAD has the headers and no body", exchange{method: "HEAD", path: "/static/plain.txt", status: 200,
			want: map[string]string{"Content-Length": "20"}}},
		{"a single range is 206", exchange{path: "/static/plain.txt", header: map[string]string{"Range": "bytes=2-5"},
			status: 206, body: "2345", want: map[string]string{"Content-Range": "bytes 2-5/20"}}},
		{"an unsatisfiable range is 416", exchange{path: "/static/plain.txt", header: map[string]string{"Range": "bytes=50-60"},
			status: 416, want: map[string]string{"Content-Range": "bytes */20", "Cache-Control": ""}}},
		{"a multi-range is a multipart 206", exchange{path: "/static/plain.txt", header: map[string]string{"Range": "bytes=0-1,4-5"},
			status: 206, contain: "Content-Range: bytes 4-5/20"}},
		{"no Accept-Encoding gets the identity file and Vary", exchange{path: "/static/style.css", status: 200,
			body: "body{color:red}", want: map[string]string{"Vary": "Accept-Encoding", "Content-Encoding": "",
				"Content-Type": "text/css; charset=utf-8"}}},
		{"br is preferred on equal weights", exchange{path: "/static/style.css", header: map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"},
			status: 200, body: "BROTLI-BYTES", want: map[string]string{"Content-Encoding": "br", "Vary": "Accept-Encoding",
				"Content-Type": "text/css; charset=utf-8", "Content-Length": "12"}}},
		{"zstd comes before gzip", exchange{path: "/static/style.css", header: map[string]string{"Accept-Encoding": "gzip, zstd"},
			status: 200, body: "ZSTD-BYTES", want: map[string]string{"Content-Encoding": "zstd"}}},
		{"a higher q-value wins over preference", exchange{path: "/static/style.css", header: map[string]string{"Accept-Encoding": "br;q=0.5, gzip;q=0.9"},
			status: 200, body: "GZIP-BYTES-0123456789", want: map[string]string{"Content-Encoding": "gzip"}}},
		{"q=0 excludes an encoding", exchange{path: "/static/style.css", header: map[string]string{"Accept-Encoding": "br;q=0, zstd;q=0, gzip"},
			status: 200, body: "GZIP-BYTES-0123456789", want: map[string]string{"Content-Encoding": "gzip"}}},
		{"a star with q=0 excludes everything", exchange{path: "/static/style.css", header: map[string]string{"Accept-Encoding": "*;q=0"},
			status: 200, body: "body{color:red}", want: map[string]string{"Content-Encoding": "", "Vary": "Accept-Encoding"}}},
		{"a star accepts the siblings", exchange{path: "/static/style.css", header: map[string]string{"Accept-Encoding": "*"},
			status: 200, body: "BROTLI-BYTES"}},
		{"a range applies to the variant's bytes", exchange{path: "/static/style.css", header: map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-3"},
			status: 206, body: "GZIP", want: map[string]string{"Content-Encoding": "gzip", "Content-Range": "bytes 0-3/21"}}},
		{"a sibling asked for directly is served as itself", exchange{path: "/static/style.css.gz", status: 200, body: "GZIP-BYTES-0123456789"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, srv, tc.exchange) })
	}
}

func TestConditionalRequests(t *testing.T) {
	site := fixture(t)
	srv := httptest.NewServer(build(t, "file://"+site, ""))
	defer srv.Close()

	first := run(t, srv, exchange{path: "/plain.txt", status: 200})
	etag, lastMod := first.Header.Get("ETag"), first.Header.Get("Last-Modified")
	if !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") || lastMod == "" {
		t.Fatalf("want a strong ETag and Last-Modified, got %q %q", etag, lastMod)
	}
	gz := run(t, srv, exchange{path: "/style.css", header: map[string]string{"Accept-Encoding": "gzip"}, status: 200})
	id := run(t, srv, exchange{path: "/style.css", status: 200})
	gzTag, idTag := gz.Header.Get("ETag"), id.Header.Get("ETag")
	if gzTag == idTag || !strings.HasSuffix(gzTag, `-gzip"`) {
		t.Fatalf("variant ETag %q must differ from identity %q and carry the coding", gzTag, idTag)
	}
	past := time.Unix(0, 0).UTC().Format(http.TimeFormat)

	tests := []struct {
		name string
		exchange
	}{
		{"a matching If-None-Match is 304", exchange{path: "/plain.txt", header: map[string]string{"If-None-Match": etag},
			status: 304, want: map[string]string{"ETag": etag, "Cache-Control": DefaultCacheControl}}},
		{"If-None-Match takes precedence over If-Modified-Since", exchange{path: "/plain.txt",
			header: map[string]string{"If-None-Match": `"other"`, "If-Modified-Since": lastMod}, status: 200}},
		{"a current If-Modified-Since is 304", exchange{path: "/plain.txt", header: map[string]string{"If-Modified-Since": lastMod}, status: 304}},
		{"an old If-Modified-Since is 200", exchange{path: "/plain.txt", header: map[string]string{"If-Modified-Since": past}, status: 200}},
		{"a failing If-Match is 412", exchange{path: "/plain.txt", header: map[string]string{"If-Match": `"other"`}, status: 412}},
		{"If-Range with the current ETag honours the range", exchange{path: "/plain.txt",
			header: map[string]string{"If-Range": etag, "Range": "bytes=0-0"}, status: 206, body: "0"}},
		{"If-Range with a stale ETag sends the whole file", exchange{path: "/plain.txt",
			header: map[string]string{"If-Range": `"stale"`, "Range": "bytes=0-0"}, status: 200, body: "0123456789abcdefghij"}},
		{"the identity ETag does not validate the gzip variant", exchange{path: "/style.css",
			header: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": idTag}, status: 200}},
		{"the gzip ETag validates the gzip variant", exchange{path: "/style.css",
			header: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": gzTag}, status: 304,
			want: map[string]string{"Vary": "Accept-Encoding", "Content-Encoding": ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, srv, tc.exchange) })
	}
}

func TestOptions(t *testing.T) {
	site := fixture(t)
	tests := []struct {
		name  string
		query string
		exchange
	}{
		{"listing on shows a sorted escaped listing", "listing=true", exchange{path: "/sub/", status: 200,
			contain: `<li><a href="./%3Cx%3E&amp;.txt">&lt;x&gt;&amp;.txt</a></li>` + "\n" + `<li><a href="./b.txt">b.txt</a></li>`}},
		{"listing hides dotfiles", "listing=true", exchange{path: "/.well-known/", status: 404}},
		{"dotfiles on serves a dotfile", "dotfiles=true", exchange{path: "/.well-known/x.txt", status: 200, body: "well known"}},
		{"a custom index list is tried in order", "index=index.html,default.htm", exchange{path: "/docs/", status: 200, body: "docs default"}},
		{"a custom cache policy applies to plain names", "cache_control=no-cache", exchange{path: "/plain.txt", status: 200,
			want: map[string]string{"Cache-Control": "no-cache"}}},
		{"a custom immutable max-age applies to hashed names", "immutable_max_age=24h", exchange{path: "/app.3f9a2c1b.js", status: 200,
			want: map[string]string{"Cache-Control": "public, max-age=86400, immutable"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(build(t, "file://"+site+"?"+tc.query, ""))
			defer srv.Close()
			run(t, srv, tc.exchange)
		})
	}
}

func TestBuildErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	must(t, os.WriteFile(file, nil, 0o644))
	tests := []struct{ name, raw, want string }{
		{"a relative path is refused", "file:relative/dir", "absolute"},
		{"a host is refused", "file://example.com/srv", "absolute"},
		{"a missing directory is refused", "file://" + dir + "/missing", "missing: no such file or directory: expected an existing directory to serve"},
		{"a file is not a directory", "file://" + file, "not a directory"},
		{"an unknown option is refused", "file://" + dir + "?listng=true", "unknown option"},
		{"a bad boolean is refused", "file://" + dir + "?listing=maybe", "expected true or false"},
		{"an index with a slash is refused", "file://" + dir + "?index=a/b.html", "without '/'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := adapters.NewRegistry(nil)
			reg.MustRegister(Kind())
			tgt, _, err := reg.Parse(tc.raw)
			if err == nil {
				_, err = reg.Build(tgt)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestAcceptEncoding(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   map[string]float64
	}{
		{"plain list has weight one", "gzip, br", map[string]float64{"gzip": 1, "br": 1, "zstd": 0}},
		{"q-values are read", "br;q=0.2, gzip;q=0.8", map[string]float64{"br": 0.2, "gzip": 0.8}},
		{"q=0 means not acceptable", "gzip;q=0", map[string]float64{"gzip": 0}},
		{"star covers unnamed codings", "gzip;q=0, *;q=0.5", map[string]float64{"gzip": 0, "br": 0.5}},
		{"names are case-insensitive and x-gzip is gzip", "X-GZIP, BR;Q=0.3", map[string]float64{"gzip": 1, "br": 0.3}},
		{"an invalid q drops the member", "br;q=2, gzip;q=abc, zstd;q=0.1234", map[string]float64{"br": 0, "gzip": 0, "zstd": 0}},
		{"whitespace around parameters is allowed", "br ; q = 0.7", map[string]float64{"br": 0.7}},
		{"empty members are skipped", ", ,gzip,", map[string]float64{"gzip": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ae := parseAcceptEncoding([]string{tc.header})
			for c, w := range tc.want {
				if got := ae.weight(c); got != w {
					t.Errorf("weight(%s) = %v, want %v", c, got, w)
				}
			}
		})
	}
}

func TestHashedName(t *testing.T) {
	tests := []struct {
		name string
		file string
		want bool
	}{
		{"a dot-separated 8-hex hash", "app.3f9a2c1b.js", true},
		{"a dash-separated 10-hex hash", "main-3f9a2c1b8d.css", true},
		{"a Django manifest name", "base.5af66c1b1797.css", true},
		{"a plain name", "app.js", false},
		{"a short hex segment", "app.3f9a2c.js", false},
		{"a date is not a hash", "report.20240101.txt", false},
		{"a hex-looking word is not a hash", "app.deadbeef.js", false},
		{"uppercase hex is not taken for a hash", "app.3F9A2C1B.js", false},
		{"a hash as the whole name is not detected", "3f9a2c1b8d.js", false},
		{"a non-hex segment", "app.3f9a2c1g.js", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := isHashedName(tc.file); got != tc.want {
				t.Fatalf("isHashedName(%q) = %v, want %v", tc.file, got, tc.want)
			}
		})
	}
}

func FuzzAcceptEncoding(f *testing.F) {
	for _, s := range []string{"gzip, br;q=0.5", "*;q=0", "br;q=1.000, zstd;q=0.", "x-gzip;foo=bar;q=0.3", ";;,;q="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ae := parseAcceptEncoding([]string{s})
		for _, c := range []string{"br", "zstd", "gzip", "identity"} {
			if w := ae.weight(c); w < 0 || w > 1 {
				t.Fatalf("weight(%s) = %v out of [0,1] for %q", c, w, s)
			}
		}
	})
}

func FuzzHashedName(f *testing.F) {
	for _, s := range []string{"app.3f9a2c1b.js", "main-3f9a2c1b8d.css", "a..b--c", "", ".3f9a2c1b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isHashedName(s) {
			// A detected hash must be a real 8+ hex run that is not the start of the name.
			i := strings.IndexAny(s, ".-")
			if i < 0 {
				t.Fatalf("%q detected without a separator", s)
			}
		}
	})
}

// TestDecodedTraversal hands the handler paths the way the router does after decoding %2e%2e, %2f and %5c:
// the decoded bytes must still never leave the root.
func TestDecodedTraversal(t *testing.T) {
	site := fixture(t)
	h := build(t, "file://"+site, "/static")
	tests := []struct{ name, path string }{
		{"decoded dot-dot-slash", "/static/../outside/secret.txt"},
		{"decoded dot-dot with backslashes", "/static/..\\outside\\secret.txt"},
		{"a NUL byte", "/static/plain.txt\x00.html"},
		{"dot-dot at the end", "/static/sub/.."},
		{"an absolute path below the mount", "/static//etc/passwd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.URL.Path = tc.path
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound {
				t.Fatalf("%q: status %d, want 404; body %q", tc.path, rec.Code, rec.Body.String())
			}
		})
	}
}
