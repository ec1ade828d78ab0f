package fastcgi

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/static"
)

// docroot builds a document root with scripts, a directory index, an upload directory and symlinks, one
// of them pointing outside the root.
func docroot(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "www")
	for _, f := range []string{"index.php", "info.php", "sub/index.php", "noindex/readme.txt", "lib.php/inner.php", "uploads/evil.jpg", "x.PHP"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("<?php\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(base, "outside.php")
	if err := os.WriteFile(outside, []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape.php")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("info.php", filepath.Join(root, "alias.php")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside.php", filepath.Join(root, "uploads", "up.php")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestResolve(t *testing.T) {
	root := docroot(t)
	s := &scripts{root: root, index: "index.php", ext: ".php", checkFile: true}
	tests := []struct {
		name     string
		rel      string
		script   string
		pathInfo string
		refused  bool
	}{
		{name: "an existing script runs", rel: "/info.php", script: "/info.php"},
		{name: "the rest after the script is PATH_INFO", rel: "/info.php/extra/path", script: "/info.php", pathInfo: "/extra/path"},
		{name: "a trailing slash after the script is PATH_INFO", rel: "/info.php/", script: "/info.php", pathInfo: "/"},
		{name: "the mount root runs the index", rel: "", script: "/index.php"},
		{name: "a slash runs the index", rel: "/", script: "/index.php"},
		{name: "a directory with an index runs it", rel: "/sub", script: "/sub/index.php"},
		{name: "a directory with an index and a slash runs it", rel: "/sub/", script: "/sub/index.php"},
		{name: "a directory without an index goes to the front controller", rel: "/noindex/", script: "/index.php"},
		{name: "a pretty URL goes to the front controller without PATH_INFO", rel: "/blog/2024/hello", script: "/index.php"},
		{name: "a directory named like a script is walked through", rel: "/lib.php/inner.php/x", script: "/lib.php/inner.php", pathInfo: "/x"},
		{name: "a symlink inside the root runs", rel: "/alias.php", script: "/alias.php"},
		{name: "a missing script is refused", rel: "/missing.php", refused: true},
		{name: "a missing script is refused even with a path after it", rel: "/missing.php/x", refused: true},
		{name: "CVE-2019-11043 class: a script below an image is refused", rel: "/uploads/evil.jpg/x.php", refused: true},
		{name: "CVE-2019-11043 class: a NUL before the extension is refused", rel: "/uploads/evil.jpg\x00.php", refused: true},
		{name: "CVE-2019-11043 class: a newline in PATH_INFO stays in PATH_INFO", rel: "/info.php/a\nb", script: "/info.php", pathInfo: "/a\nb"},
		{name: "the image itself goes to the front controller, never runs", rel: "/uploads/evil.jpg", script: "/index.php"},
		{name: "an upper-case extension is not the extension", rel: "/x.PHP", script: "/index.php"},
		{name: "a Unicode look-alike extension is not the extension", rel: "/info.ph\u0420", script: "/index.php"},
		{name: "a symlink escaping the root is refused", rel: "/escape.php", refused: true},
		{name: "a relative symlink escaping the root is refused", rel: "/uploads/up.php", refused: true},
		{name: "a dot-dot segment is refused", rel: "/sub/../info.php", refused: true},
		{name: "a dot segment is refused", rel: "/./info.php", refused: true},
		{name: "an empty segment is refused", rel: "//info.php", refused: true},
		{name: "a backslash is refused", rel: "/sub\\..\\info.php", refused: true},
		{name: "a path without a leading slash is refused", rel: "info.php", refused: true},
		{name: "the bare extension is not a script name", rel: "/.php", script: "/index.php"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.resolve(tt.rel)
			if tt.refused {
				if !errors.Is(err, errNoScript) {
					t.Fatalf("resolve(%q) = %+v, %v; want refused", tt.rel, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve(%q): %v", tt.rel, err)
			}
			if got.Script != tt.script || got.PathInfo != tt.pathInfo {
				t.Fatalf("resolve(%q) = %+v, want script %q path info %q", tt.rel, got, tt.script, tt.pathInfo)
			}
		})
	}
}

func TestResolveStatic(t *testing.T) {
	root := docroot(t)
	files, err := static.NewFiles("test", root, nil, &adapters.Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	s := &scripts{root: root, index: "index.php", ext: ".php", checkFile: true, files: files}
	tests := []struct {
		name, rel, static, script string
	}{
		{name: "an existing non-script file is static", rel: "/noindex/readme.txt", static: "noindex/readme.txt"},
		{name: "an upload is static, never a script", rel: "/uploads/evil.jpg", static: "uploads/evil.jpg"},
		{name: "a script still runs", rel: "/info.php", script: "/info.php"},
		{name: "a file with a trailing slash is not static", rel: "/uploads/evil.jpg/", script: "/index.php"},
		{name: "a path below a file is not static", rel: "/uploads/evil.jpg/x", script: "/index.php"},
		{name: "the extension in another case is never static", rel: "/x.PHP", script: "/index.php"},
		{name: "a directory runs its index", rel: "/sub", script: "/sub/index.php"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.resolve(tt.rel)
			if err != nil || got.Static != tt.static || got.Script != tt.script {
				t.Fatalf("resolve(%q) = %+v, %v; want static %q script %q", tt.rel, got, err, tt.static, tt.script)
			}
		})
	}
}

func TestResolveWithoutFileCheck(t *testing.T) {
	s := &scripts{root: "/srv/www", index: "index.php", ext: ".php"}
	tests := []struct {
		name, rel, script, pathInfo string
	}{
		{name: "the first segment ending in the extension is the script", rel: "/a/b.php/c.php/d", script: "/a/b.php", pathInfo: "/c.php/d"},
		{name: "a path without the extension goes to the front controller", rel: "/x/y", script: "/index.php"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.resolve(tt.rel)
			if err != nil || got.Script != tt.script || got.PathInfo != tt.pathInfo {
				t.Fatalf("resolve(%q) = %+v, %v", tt.rel, got, err)
			}
		})
	}
}

func TestResolveWithoutFrontController(t *testing.T) {
	root := t.TempDir()
	s := &scripts{root: root, index: "index.php", ext: ".php", checkFile: true}
	if _, err := s.resolve("/anything"); !errors.Is(err, errNoScript) {
		t.Fatalf("err = %v, want errNoScript", err)
	}
}

// FuzzResolve checks the safety contract on arbitrary paths: whatever runs ends in the extension, is a
// clean path inside the root, and the script plus PATH_INFO is the request path (or the path leads to an
// index file).
func FuzzResolve(f *testing.F) {
	root := docroot(f)
	for _, s := range []string{"/info.php/x", "/uploads/evil.jpg/x.php", "/uploads/evil.jpg\x00.php", "/sub/", "/../x.php", "/escape.php"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	files, err := static.NewFiles("fuzz", root, nil, &adapters.Options{}, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rel string, check bool) {
		s := &scripts{root: root, index: "index.php", ext: ".php", checkFile: check}
		if check {
			s.files = files
		}
		got, err := s.resolve(rel)
		if err != nil {
			return
		}
		if got.Static != "" {
			// A static file is the whole path, a regular file inside the root, no dotfile, never a script.
			if got.Script != "" || "/"+got.Static != rel || strings.HasPrefix(got.Static, ".") || strings.Contains(got.Static, "/.") ||
				hasFoldedSuffix(got.Static, ".php") {
				t.Fatalf("resolve(%q) serves %+v", rel, got)
			}
			real, err := filepath.EvalSymlinks(filepath.Join(root, got.Static))
			fi, serr := os.Stat(real)
			if err != nil || serr != nil || !fi.Mode().IsRegular() || !strings.HasPrefix(real, root+"/") {
				t.Fatalf("resolve(%q) serves %q (%s): not a regular file inside the root", rel, got.Static, real)
			}
			return
		}
		if !strings.HasSuffix(got.Script, ".php") || !strings.HasPrefix(got.Script, "/") {
			t.Fatalf("resolve(%q) runs %q", rel, got.Script)
		}
		if filepath.Clean(got.Script) != got.Script || strings.ContainsAny(got.Script, "\x00\\") {
			t.Fatalf("resolve(%q) runs an unclean path %q", rel, got.Script)
		}
		if strings.HasSuffix(got.Script, "/index.php") && got.PathInfo == "" {
			return
		}
		if got.Script+got.PathInfo != rel {
			t.Fatalf("resolve(%q) = %+v does not add up to the path", rel, got)
		}
		if check {
			fi, err := os.Stat(filepath.Join(root, got.Script))
			if err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("resolve(%q) runs %q which is not a regular file: %v", rel, got.Script, err)
			}
			real, _ := filepath.EvalSymlinks(filepath.Join(root, got.Script))
			if !strings.HasPrefix(real, root+"/") {
				t.Fatalf("resolve(%q) runs %q outside the root", rel, real)
			}
		}
	})
}
