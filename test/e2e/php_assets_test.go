package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// TestPHPFrontControllerAppKeepsItsAssets runs a front-controller PHP site (testdata/phpapp: index.php
// routing every other path, CSS, JavaScript, an image, an upload directory) under real PHP-FPM, mounted at
// /php/ with nothing but root set, and checks what a browser needs: the page, its assets as files with the
// file adapter's caching headers, uploads sent back as bytes (never run), and the front controller for
// everything else.
func TestPHPFrontControllerAppKeepsItsAssets(t *testing.T) {
	root := filepath.Join(t.TempDir(), "public")
	if err := os.CopyFS(root, os.DirFS("testdata/phpapp")); err != nil {
		t.Fatal(err)
	}
	// A precompressed sibling as a build step (or nginx's gzip_static users) would leave it.
	css, err := os.ReadFile(filepath.Join(root, "css", "app.css"))
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(css)
	zw.Close()
	if err := os.WriteFile(filepath.Join(root, "css", "app.css.gz"), gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := testpeer.StartPHPFPM(t, root)
	srv, _, _ := startGateway(t, map[string]string{
		"GATEWAY_ROUTES": "/php/=fastcgi+unix://" + sock + "?root=" + url.QueryEscape(root),
	})
	base := srv.URL
	// Redirects are checked, not followed; Accept-Encoding is only sent when a case sets it.
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DisableCompression: true}}
	get := func(t *testing.T, path string, hdr ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	t.Run("the page links its assets under the mount and each is served as a file", func(t *testing.T) {
		resp, page := get(t, "/php/")
		if resp.StatusCode != 200 || resp.Header.Get("X-Front-Controller") == "" {
			t.Fatalf("home: %d %v\n%s", resp.StatusCode, resp.Header, page)
		}
		links := regexp.MustCompile(`(?:href|src)="(/php/(?:css|js|img)/[^"]+)"`).FindAllSubmatch(page, -1)
		if len(links) != 3 {
			t.Fatalf("want 3 asset links in the page, got %q", links)
		}
		types := map[string]string{".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".png": "image/png"}
		for _, l := range links {
			path := string(l[1])
			resp, body := get(t, path)
			want, err := os.ReadFile(filepath.Join(root, strings.TrimPrefix(path, "/php/")))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || !bytes.Equal(body, want) {
				t.Errorf("%s: %d, %d bytes, want the file's %d", path, resp.StatusCode, len(body), len(want))
			}
			if resp.Header.Get("X-Front-Controller") != "" {
				t.Errorf("%s was answered by the front controller", path)
			}
			if ct := resp.Header.Get("Content-Type"); ct != types[filepath.Ext(path)] {
				t.Errorf("%s: Content-Type %q, want %q", path, ct, types[filepath.Ext(path)])
			}
			if resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" || resp.Header.Get("Cache-Control") == "" {
				t.Errorf("%s lacks caching headers: %v", path, resp.Header)
			}
		}
	})

	t.Run("conditional requests, ranges and precompressed siblings work as with file://", func(t *testing.T) {
		resp, _ := get(t, "/php/css/app.css")
		if r, b := get(t, "/php/css/app.css", "If-None-Match", resp.Header.Get("ETag")); r.StatusCode != 304 || len(b) != 0 {
			t.Errorf("revalidation: %d %q, want 304", r.StatusCode, b)
		}
		if r, b := get(t, "/php/css/app.css", "Range", "bytes=0-3"); r.StatusCode != 206 || string(b) != "body" {
			t.Errorf("range: %d %q", r.StatusCode, b)
		}
		r, b := get(t, "/php/css/app.css", "Accept-Encoding", "gzip")
		if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != "gzip" || !bytes.Equal(b, gz.Bytes()) || r.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("gzip sibling: %d %v", r.StatusCode, r.Header)
		}
	})

	t.Run("pretty URLs and unknown paths reach the front controller", func(t *testing.T) {
		if r, b := get(t, "/php/articles/42"); r.StatusCode != 200 || !bytes.Contains(b, []byte("Article 42")) {
			t.Errorf("article: %d %s", r.StatusCode, b)
		}
		if r, b := get(t, "/php/no/such/page"); r.StatusCode != 404 || r.Header.Get("X-Front-Controller") == "" || !bytes.Contains(b, []byte("/no/such/page")) {
			t.Errorf("unknown path: %d %v %s", r.StatusCode, r.Header, b)
		}
	})

	upload := func(t *testing.T, name string, content []byte) string {
		t.Helper()
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(content)
		mw.Close()
		resp, err := c.Post(base+"/php/upload", mw.FormDataContentType(), &body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 303 {
			t.Fatalf("upload %s: %d %s", name, resp.StatusCode, b)
		}
		return resp.Header.Get("Location")
	}
	// The payload writes a marker file and prints a word that is not in its own source.
	payload := []byte("\xff\xd8\xff\xe0<?php file_put_contents(__DIR__ . '/../RAN', 'x'); echo strtoupper('pwned'); ?>")

	t.Run("an uploaded file holding PHP code is sent back as bytes, never run", func(t *testing.T) {
		for _, name := range []string{"evil.jpg", "evil.php.jpg", "evil.phtml"} {
			loc := upload(t, name, payload)
			if loc != "/php/uploads/"+name {
				t.Fatalf("upload %s: Location %q", name, loc)
			}
			r, b := get(t, loc)
			if r.StatusCode != 200 || !bytes.Equal(b, payload) || r.Header.Get("X-Front-Controller") != "" {
				t.Errorf("%s: %d %q, want the uploaded bytes", loc, r.StatusCode, b)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "RAN")); err == nil {
			t.Fatal("an uploaded file was executed")
		}
	})

	t.Run("every path-info trick on an upload keeps its 404 or 400", func(t *testing.T) {
		upload(t, "evil.jpg", payload)
		upload(t, "evil.php.jpg", payload)
		for _, tc := range []struct {
			path   string
			status int
		}{
			{"/php/uploads/evil.jpg/x.php", 404},
			{"/php/uploads/evil.php.jpg/x.php", 404},
			{"/php/uploads/evil.jpg/.php", 0}, // not a script name: whoever answers, nothing runs
			{"/php/uploads/evil.jpg%00.php", 400},
			{"/php/uploads/evil.jpg%0a.php", 400},
			{"/php/uploads/evil.jpg%2fx.php", 400},
			{"/php/uploads/../uploads/evil.jpg/x.php", 404},
			{"/php/uploads/evil.jpg/x.php/y", 404},
		} {
			req, _ := http.NewRequest("GET", base+"/", nil)
			req.URL.Opaque = tc.path // sent exactly as written
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte("PWNED")) {
				t.Fatalf("%s executed the upload: %s", tc.path, b)
			}
			if tc.status != 0 && resp.StatusCode != tc.status {
				t.Errorf("%s: %d, want %d", tc.path, resp.StatusCode, tc.status)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "RAN")); err == nil {
			t.Fatal("an uploaded file was executed")
		}
	})
}
