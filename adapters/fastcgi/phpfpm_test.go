package fastcgi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// phpDocroot copies testdata/php to a temp dir (tests create flag files and symlinks in it) and adds a
// symlink pointing outside the root.
func phpDocroot(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "www")
	if err := os.CopyFS(root, os.DirFS("testdata/php")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "outside.php")
	if err := os.WriteFile(outside, []byte("<?php echo 'ESCAPED';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape.php")); err != nil {
		t.Fatal(err)
	}
	return root
}

type phpReport struct {
	ScriptName     *string `json:"script_name"`
	PathInfo       *string `json:"path_info"`
	RequestURI     string  `json:"request_uri"`
	ScriptFilename string  `json:"script_filename"`
	QueryString    string  `json:"query_string"`
	PHPSelf        string  `json:"php_self"`
	HTTPS          *string `json:"https"`
	AppEnv         *string `json:"app_env"`
	HTTPProxy      *string `json:"http_proxy"`
	PID            int     `json:"pid"`
}

func str(p *string) string {
	if p == nil {
		return "<unset>"
	}
	return *p
}

func get(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestPHPFPM(t *testing.T) {
	root := phpDocroot(t)
	sock := testpeer.StartPHPFPM(t, root)
	app := "fastcgi+unix://" + sock + "?root=" + root + "&timeout=20s&max_idle=1&param.APP_ENV=test&param.HTTPS=on"
	h, srv, logs := gateway(t, app, "/php")

	report := func(t *testing.T, path string) (*http.Response, phpReport, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Proxy", "http://evil.example:3128")
		resp, body := get(t, req)
		var r phpReport
		if resp.StatusCode == 200 && resp.Header.Get("Content-Type") == "application/json" {
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("%s: %q: %v", path, body, err)
			}
		}
		return resp, r, body
	}

	t.Run("the mount and the script split into SCRIPT_NAME and PATH_INFO", func(t *testing.T) {
		tests := []struct {
			name, path, scriptName, pathInfo, file string
		}{
			{name: "a script with a path after it", path: "/php/info.php/extra/path?x=1", scriptName: "/php/info.php", pathInfo: "/extra/path", file: "/info.php"},
			{name: "a script alone", path: "/php/info.php", scriptName: "/php/info.php", pathInfo: "", file: "/info.php"},
			{name: "a pretty URL goes to the front controller", path: "/php/blog/2024/hello?page=2", scriptName: "/php/index.php", pathInfo: "", file: "/index.php"},
			{name: "the mount itself runs the index", path: "/php", scriptName: "/php/index.php", pathInfo: "", file: "/index.php"},
			{name: "the mount with a slash runs the index", path: "/php/", scriptName: "/php/index.php", pathInfo: "", file: "/index.php"},
			{name: "a directory runs its own index", path: "/php/sub/", scriptName: "/php/sub/index.php", pathInfo: "", file: "/sub/index.php"},
			{name: "CVE-2019-11043: a newline in PATH_INFO stays there", path: "/php/info.php/a%0ab", scriptName: "/php/info.php", pathInfo: "/a\nb", file: "/info.php"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, r, body := report(t, tt.path)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				if str(r.ScriptName) != tt.scriptName || str(r.PathInfo) != tt.pathInfo || r.ScriptFilename != root+tt.file {
					t.Errorf("SCRIPT_NAME %q PATH_INFO %q SCRIPT_FILENAME %q", str(r.ScriptName), str(r.PathInfo), r.ScriptFilename)
				}
				if r.RequestURI != tt.path {
					t.Errorf("REQUEST_URI %q, want %q", r.RequestURI, tt.path)
				}
				if str(r.AppEnv) != "test" || str(r.HTTPS) != "on" {
					t.Errorf("configured params: APP_ENV %q HTTPS %q", str(r.AppEnv), str(r.HTTPS))
				}
				if r.HTTPProxy != nil {
					t.Errorf("HTTP_PROXY = %q reached PHP (httpoxy)", *r.HTTPProxy)
				}
			})
		}
	})

	t.Run("CVE-2019-11043 and cgi.fix_pathinfo: nothing but existing .php files runs", func(t *testing.T) {
		tests := []struct {
			name   string
			path   string
			status int // 404, or 200 from the front controller (or the file's bytes with static)
			static string
		}{
			{name: "a .php segment below an image", path: "/php/uploads/evil.jpg/x.php", status: 404},
			{name: "a NUL before .php", path: "/php/uploads/evil.jpg%00.php", status: 404},
			{name: "a newline before .php", path: "/php/uploads/evil.jpg%0a.php", status: 404},
			{name: "a path after a NUL-terminated script", path: "/php/info.php%00.jpg/x", status: 404},
			{name: "a missing script", path: "/php/missing.php", status: 404},
			{name: "a missing script with a path after it", path: "/php/missing.php/uploads/evil.jpg", status: 404},
			{name: "a symlink out of the root", path: "/php/escape.php", status: 404},
			{name: "the image itself is sent as bytes, never run", path: "/php/uploads/evil.jpg", status: 200, static: "uploads/evil.jpg"},
			{name: "a .php.jpg upload is sent as bytes, never run", path: "/php/uploads/evil.php.jpg", status: 200, static: "uploads/evil.php.jpg"},
			{name: "a path after the image goes to the front controller", path: "/php/uploads/evil.jpg/x", status: 200},
			{name: "a .php segment below a .php.jpg upload", path: "/php/uploads/evil.php.jpg/x.php", status: 404},
			{name: "the image as a directory goes to the front controller", path: "/php/uploads/evil.jpg/", status: 200},
			{name: "an upper-case extension goes to the front controller", path: "/php/uploads/evil.PHP", status: 200},
			{name: "a Cyrillic look-alike extension goes to the front controller", path: "/php/uploads/evil.ph%D0%A0", status: 200},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp, r, body := report(t, tt.path)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
				}
				if tt.static != "" {
					want, err := os.ReadFile(filepath.Join(root, tt.static))
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(body, want) || resp.Header.Get("X-Script") != "" || resp.Header.Get("ETag") == "" {
						t.Fatalf("want the file's bytes with an ETag; got ETag %q X-Script %q body %q",
							resp.Header.Get("ETag"), resp.Header.Get("X-Script"), body)
					}
					return
				}
				if bytes.Contains(body, []byte("EVIL")) || bytes.Contains(body, []byte("ESCAPED")) {
					t.Fatalf("a non-script ran: %s", body)
				}
				if tt.status == 200 && r.ScriptFilename != root+"/index.php" {
					t.Fatalf("SCRIPT_FILENAME %q, want the front controller", r.ScriptFilename)
				}
			})
		}
		if _, err := os.Stat(filepath.Join(root, "EVIL_RAN")); err == nil {
			t.Fatal("uploads/evil.jpg was executed")
		}
	})

	t.Run("a POST body reaches PHP", func(t *testing.T) {
		body := bytes.Repeat([]byte("php-fpm "), 40000) // 320 KB: several STDIN records
		req, _ := http.NewRequest("POST", srv.URL+"/php/upload.php", bytes.NewReader(body))
		resp, out := get(t, req)
		want := `{"size":320000,"sha256":"` + sum(body) + `","content_length":"320000"}`
		if resp.StatusCode != 200 || string(out) != want {
			t.Fatalf("status %d: %s, want %s", resp.StatusCode, out, want)
		}
	})

	t.Run("a chunked body is spooled and gets CONTENT_LENGTH", func(t *testing.T) {
		body := bytes.Repeat([]byte("0123456789abcdef"), 128<<10) // 2 MiB: past the memory spool
		req, _ := http.NewRequest("POST", srv.URL+"/php/upload.php", unknownLength{bytes.NewReader(body)})
		resp, out := get(t, req)
		want := `{"size":2097152,"sha256":"` + sum(body) + `","content_length":"2097152"}`
		if resp.StatusCode != 200 || string(out) != want {
			t.Fatalf("status %d: %s, want %s", resp.StatusCode, out, want)
		}
	})

	t.Run("a chunked multipart upload reaches $_FILES", func(t *testing.T) {
		file := bytes.Repeat([]byte{0, 1, 2, 3, 250, 251}, 50000)
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		fw, _ := mw.CreateFormFile("file", "data.bin")
		fw.Write(file)
		mw.Close()
		req, _ := http.NewRequest("POST", srv.URL+"/php/upload.php", unknownLength{bytes.NewReader(mp.Bytes())})
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, out := get(t, req)
		want := `{"error":0,"size":300000,"sha256":"` + sum(file) + `","content_length":"` + strconv.Itoa(mp.Len()) + `"}`
		if resp.StatusCode != 200 || string(out) != want {
			t.Fatalf("status %d: %s, want %s", resp.StatusCode, out, want)
		}
	})

	t.Run("a flushed response streams chunk by chunk", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/php/stream.php?id=s1")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("Content-Type %q", ct)
		}
		br := bufio.NewReader(resp.Body)
		for i := 1; i <= 3; i++ {
			line, err := br.ReadString('\n')
			if err != nil || line != "data: chunk "+strconv.Itoa(i)+"\n" {
				t.Fatalf("event %d: %q, %v", i, line, err)
			}
			if blank, _ := br.ReadString('\n'); blank != "\n" {
				t.Fatalf("event %d not terminated: %q", i, blank)
			}
			// PHP produces the next chunk only after this one reached the client.
			if i < 3 {
				if err := os.WriteFile(filepath.Join(root, "flag-s1-"+strconv.Itoa(i)), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Fatalf("after the events: %q, %v", rest, err)
		}
	})

	t.Run("PHP's stderr reaches the log", func(t *testing.T) {
		resp, body := get(t, mustRequest("GET", srv.URL+"/php/warn.php"))
		if resp.StatusCode != 200 || string(body) != "warned\n" {
			t.Fatalf("status %d: %q", resp.StatusCode, body)
		}
		if !strings.Contains(logs.String(), "switchyard-test-warning") {
			t.Fatalf("log lacks PHP's message:\n%s", logs.String())
		}
	})

	t.Run("a HEAD request and the requests after it share one kept connection", func(t *testing.T) {
		resp, body := get(t, mustRequest("HEAD", srv.URL+"/php/info.php"))
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Fatalf("HEAD: status %d body %q", resp.StatusCode, body)
		}
		pids := map[int]bool{}
		for i := 0; i < 5; i++ {
			_, r, body := report(t, "/php/info.php")
			if r.PID == 0 {
				t.Fatalf("no pid in %s", body)
			}
			pids[r.PID] = true
		}
		// A kept connection stays with one PHP-FPM worker.
		if len(pids) != 1 {
			t.Errorf("5 sequential requests were served by workers %v, want one kept connection", pids)
		}
		if idle := h.pool.idle().Len(); idle != 1 {
			t.Errorf("%d idle connections, want 1", idle)
		}
	})

	t.Run("a script sleeping past the timeout is a 504", func(t *testing.T) {
		_, slow, _ := gateway(t, "fastcgi+unix://"+sock+"?root="+root+"&timeout=300ms&max_idle=0", "/php")
		resp, body := get(t, mustRequest("GET", slow.URL+"/php/sleep.php?s=2"))
		if resp.StatusCode != 504 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})

	t.Run("an absent socket is a 502", func(t *testing.T) {
		_, gone, _ := gateway(t, "fastcgi+unix://"+sock+".absent?root="+root, "/php")
		resp, body := get(t, mustRequest("GET", gone.URL+"/php/info.php"))
		if resp.StatusCode != 502 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
}
