package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// gateway init writes a file that `gateway check` passes and that, once the apps are in their
// directories, serves all of them from their usual servers: a startproject site at /, a plain Flask app,
// a PHP script and front controller, a Node server and static files below their prefixes.
func TestInitWritesARunnableSite(t *testing.T) {
	testpeer.Need(t, "apt-get install gunicorn python3-django python3-flask php-fpm nodejs", "gunicorn", "django-admin", testpeer.PHPFPM, "node")
	root, err := os.MkdirTemp("", "init-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755) // PHP-FPM's workers may run as www-data: they read the scripts
	dirs := map[string]string{}
	for _, s := range initStacks {
		dirs[s] = filepath.Join(root, s)
		if err := os.Mkdir(dirs[s], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testpeer.DebianPython, "-m", "django", "startproject", "mysite", dirs["django"])
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("startproject: %v\n%s", err, out)
	}
	files := map[string]string{
		filepath.Join(dirs["flask"], "app.py"):     "from flask import Flask, url_for\n\napp = Flask(__name__)\n\n\n@app.route(\"/\")\ndef index():\n    return \"flask \" + url_for(\"index\")\n",
		filepath.Join(dirs["php"], "index.php"):    `<?php echo "php ", $_SERVER["SCRIPT_NAME"], " ", $_SERVER["REQUEST_URI"];`,
		filepath.Join(dirs["node"], "server.js"):   `require("http").createServer((req, res) => res.end("node " + req.url + " " + req.headers["x-forwarded-prefix"])).listen(Number(process.env.PORT), process.env.HOST);`,
		filepath.Join(dirs["static"], "hello.txt"): "static hello\n",
	}
	for p, c := range files {
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(root, "site.yaml")
	args := []string{"-o", path}
	for _, s := range initStacks {
		args = append(args, s+"="+dirs[s])
	}
	var out, errb bytes.Buffer
	if code := runInit(args, &out, &errb); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errb.String())
	}
	written, _ := os.ReadFile(path)
	for _, w := range []string{"DJANGO_SETTINGS_MODULE: \"mysite.settings\"", "\"mysite.wsgi\"", "ALLOWED_HOSTS", "prefix_header=script_name", "trust proxy"} {
		if !strings.Contains(string(written), w) {
			t.Errorf("the file lacks %q", w)
		}
	}

	errb.Reset()
	if code := runInit(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "exists; it is left as it is") {
		t.Fatalf("a second init: exit %d: %s", code, errb.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, written) {
		t.Fatal("a second init changed the file")
	}
	errb.Reset()
	if code := runInit([]string{"-o", filepath.Join(root, "x.yaml"), "rails"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown stack "rails" (known: django, flask, php, node, static)`) {
		t.Fatalf("an unknown stack: exit %d: %s", code, errb.String())
	}

	out.Reset()
	errb.Reset()
	if code := run([]string{"check"}, []string{"GATEWAY_CONFIG=" + path}, &out, &errb); code != 0 {
		t.Fatalf("check: exit %d\n%s%s", code, out.String(), errb.String())
	}

	p := startGateway(t, "GATEWAY_CONFIG="+path)
	base := "http://" + p.addr
	for _, tc := range []struct{ path, want string }{
		{"/", "The install worked successfully"},
		{"/flask/", "flask /flask/"},
		{"/php/", "php /php/index.php /php/"},
		{"/php/orders/42", "php /php/index.php /php/orders/42"},
		{"/node/x?y=1", "node /x?y=1 /node"},
		{"/static/hello.txt", "static hello"},
	} {
		code, body, err := hostGet(http.DefaultClient, base, "localhost", tc.path)
		if err != nil || code != 200 || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %.200q %v, want %q", tc.path, code, body, err, tc.want)
		}
	}
}
