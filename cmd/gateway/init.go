package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// initStacks are the stacks `gateway init` knows, in the order their routes are written.
var initStacks = []string{"django", "flask", "php", "node", "static"}

// initApp is one stack as `gateway init` writes it.
type initApp struct {
	stack, dir, mount string
}

// runInit is `gateway init [-o FILE] STACK[=DIR] ...`: it writes a commented YAML file that runs each
// stack's app with its usual server, mounted on one port (the first app at /, the others under
// /STACK/), and names the app-side settings each framework needs behind the gateway. It never overwrites
// a file, and creates an app's directory when it is missing, so `gateway check` passes on what it wrote.
func runInit(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "gateway.yaml", "the file to write (never overwritten)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gateway init [-o FILE] STACK[=DIR] ...\n\nstacks: %s (DIR defaults to ./STACK)\n", strings.Join(initStacks, ", "))
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	apps, err := initApps(fs.Args())
	if err != nil {
		fmt.Fprintf(stderr, "gateway init: %v\n", err)
		fs.Usage()
		return 2
	}
	path, err := filepath.Abs(*out)
	if err != nil {
		fmt.Fprintf(stderr, "gateway init: %v\n", err)
		return 1
	}
	if _, err := os.Lstat(path); err == nil {
		fmt.Fprintf(stderr, "gateway init: %s exists; it is left as it is (choose another name with -o)\n", path)
		return 1
	}
	for _, a := range apps {
		if err := os.MkdirAll(a.dir, 0o755); err != nil {
			fmt.Fprintf(stderr, "gateway init: %v\n", err)
			return 1
		}
	}
	files := map[string]string{path: initYAML(apps, path)}
	for _, a := range apps {
		if a.stack == "php" {
			pool := strings.TrimSuffix(path, filepath.Ext(path)) + ".php-fpm.conf"
			if _, err := os.Lstat(pool); err == nil {
				fmt.Fprintf(stderr, "gateway init: %s exists; it is left as it is (choose another name with -o)\n", pool)
				return 1
			}
			files[pool] = phpPool(a)
		}
	}
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = io.WriteString(f, files[p])
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			fmt.Fprintf(stderr, "gateway init: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote %s\n", p)
	}
	fmt.Fprintf(stdout, "next: GATEWAY_CONFIG=%s gateway check, then GATEWAY_CONFIG=%s gateway\n", path, path)
	return 0
}

// initApps reads the STACK[=DIR] arguments.
func initApps(args []string) ([]initApp, error) {
	if len(args) == 0 {
		return nil, errors.New("name at least one stack")
	}
	byStack := map[string]initApp{}
	for _, arg := range args {
		stack, dir, _ := strings.Cut(arg, "=")
		stack = strings.ToLower(strings.TrimSpace(stack))
		known := false
		for _, s := range initStacks {
			known = known || s == stack
		}
		if !known {
			return nil, fmt.Errorf("unknown stack %q (known: %s)", stack, strings.Join(initStacks, ", "))
		}
		if _, dup := byStack[stack]; dup {
			return nil, fmt.Errorf("stack %s is named twice", stack)
		}
		if dir == "" {
			dir = stack
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		byStack[stack] = initApp{stack: stack, dir: abs}
	}
	var apps []initApp
	root := false
	for _, s := range initStacks {
		a, ok := byStack[s]
		if !ok {
			continue
		}
		switch {
		case s == "static":
			a.mount = "/static/"
		case !root:
			a.mount, root = "/", true
		default:
			a.mount = "/" + s + "/"
		}
		apps = append(apps, a)
	}
	return apps, nil
}

// djangoProject finds the project package of a startproject layout in dir (the directory holding
// wsgi.py and settings.py); "mysite" when there is none yet.
func djangoProject(dir string) string {
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "wsgi.py"))
	sort.Strings(matches)
	for _, m := range matches {
		if _, err := os.Stat(filepath.Join(filepath.Dir(m), "settings.py")); err == nil {
			return filepath.Base(filepath.Dir(m))
		}
	}
	return "mysite"
}

// program is the path of the first of names found in PATH or the usual system directories, or names[0].
func program(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		for _, d := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
			if fi, err := os.Stat(filepath.Join(d, n)); err == nil && !fi.IsDir() {
				return filepath.Join(d, n)
			}
		}
	}
	return names[0]
}

// yamlQuote writes s as a YAML double-quoted scalar.
func yamlQuote(s string) string { return fmt.Sprintf("%q", s) }

func initYAML(apps []initApp, path string) string {
	var b strings.Builder
	var stacks []string
	for _, a := range apps {
		stacks = append(stacks, a.stack)
	}
	fmt.Fprintf(&b, `# Switchyard: one port in front of %s, each app run by the gateway itself
# (docs/run-apps.md). Written by gateway init. Check it, then serve:
#
#   GATEWAY_CONFIG=%s gateway check
#   GATEWAY_CONFIG=%s gateway
#
# Every app gets its own process, its own environment (nothing is inherited but what "inherit" lists) and
# a unix socket or loopback port the gateway allocates ({socket}, {addr}: no socket to pick by hand).
addr: ":8080"

routes:
`, strings.Join(stacks, ", "), path, path)
	for _, a := range apps {
		switch a.stack {
		case "django":
			proj := djangoProject(a.dir)
			opt := ""
			if a.mount != "/" {
				opt = "?prefix_header=script_name"
			}
			fmt.Fprintf(&b, `  # Django under gunicorn, one process per settings module (a second site: copy this route with
  # another DJANGO_SETTINGS_MODULE and host). In %s/settings.py behind the gateway:
  #   ALLOWED_HOSTS = ["www.example.com"]          the host names the gateway serves
  #   SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")   when the gateway serves HTTPS
  #   CSRF_TRUSTED_ORIGINS = ["https://www.example.com"]
  #   STATIC_ROOT = BASE_DIR / "staticfiles", then manage.py collectstatic, served by a static route
  # Under a prefix, prefix_header=script_name makes reverse() and redirects carry it (docs/apps.md).
  - pattern: %s
    app: unix://{socket}%s
    run:
      name: django
      command: [%s, --bind, "unix:{socket}", --workers, "2", %s]
      dir: %s
      env: {DJANGO_SETTINGS_MODULE: %s, PYTHONDONTWRITEBYTECODE: "1"}
      inherit: [PATH, LANG]

`, proj, a.mount, opt, yamlQuote(program("gunicorn")), yamlQuote(proj+".wsgi"), yamlQuote(a.dir), yamlQuote(proj+".settings"))
		case "flask":
			opt := ""
			if a.mount != "/" {
				opt = "?prefix_header=script_name"
			}
			fmt.Fprintf(&b, `  # Flask under gunicorn (the app object "app" in app.py). Under a prefix, prefix_header=script_name
  # makes url_for() and redirect() carry it with no change to the app. When the gateway serves HTTPS,
  # wrap the app in werkzeug's ProxyFix(app.wsgi_app, x_proto=1) so url_for(_external=True) says https.
  - pattern: %s
    app: unix://{socket}%s
    run:
      name: flask
      command: [%s, --bind, "unix:{socket}", --workers, "2", "app:app"]
      dir: %s
      env: {PYTHONDONTWRITEBYTECODE: "1"}
      inherit: [PATH, LANG]

`, a.mount, opt, yamlQuote(program("gunicorn")), yamlQuote(a.dir))
		case "php":
			pool := strings.TrimSuffix(path, filepath.Ext(path)) + ".php-fpm.conf"
			flags := `-F, -y, ` + yamlQuote(pool)
			if os.Geteuid() == 0 {
				flags = `-F, -R, -y, ` + yamlQuote(pool)
			}
			fmt.Fprintf(&b, `  # PHP under PHP-FPM with its own pool file (%s: it listens on ${SOCKET}, the socket
  # the gateway allocated). Scripts below root run; any other path goes to index.php (a front
  # controller); other existing files (CSS, JS, images) are served as static files. PHP sees the
  # prefix in $_SERVER['SCRIPT_NAME'] and HTTPS in $_SERVER['HTTPS'].
  - pattern: %s
    app: fastcgi+unix://{socket}?root=%s
    run:
      name: php
      command: [%s, %s]
      dir: %s

`, filepath.Base(pool), a.mount, a.dir, yamlQuote(program("php-fpm", "php-fpm8.4", "php-fpm8.3", "php-fpm8.2", "php-fpm8.1")), flags, yamlQuote(a.dir))
		case "node":
			opt := ""
			if a.mount != "/" {
				opt = "?prefix_header=x-forwarded-prefix"
			}
			fmt.Fprintf(&b, `  # Node (Express or any server) listening on process.env.PORT and process.env.HOST. Behind the
  # gateway: app.set("trust proxy", "loopback") so req.ip and req.protocol come from the gateway's
  # X-Forwarded-* headers. Under a prefix the app sees the path below it, and the prefix in the
  # X-Forwarded-Prefix header for the URLs it builds.
  - pattern: %s
    app: http://{addr}%s
    run:
      name: node
      command: [%s, server.js]
      dir: %s
      env: {NODE_ENV: production}
      inherit: [PATH, LANG]

`, a.mount, opt, yamlQuote(program("node", "nodejs")), yamlQuote(a.dir))
		case "static":
			fmt.Fprintf(&b, `  # Static files (a Django STATIC_ROOT after collectstatic, a front end's build output), served by the
  # gateway itself with ETags, ranges and precompressed .gz/.br siblings.
  - pattern: %s
    app: file://%s

`, a.mount, a.dir)
		}
	}
	return b.String()
}

// phpPool is the PHP-FPM configuration gateway init writes next to the YAML file.
func phpPool(a initApp) string {
	user := ""
	if os.Geteuid() == 0 {
		user = "; PHP-FPM started by root (-R) runs its workers as this user: it must be able to read the scripts.\nuser = www-data\ngroup = www-data\n"
	}
	return fmt.Sprintf(`; PHP-FPM for the gateway (written by gateway init). The gateway starts it with -F (in the foreground)
; and sets SOCKET to the unix socket it allocated; PHP-FPM reads environment variables as ${NAME}.
[global]
error_log = /proc/self/fd/2
daemonize = no

[app]
%slisten = ${SOCKET}
listen.mode = 0600
pm = dynamic
pm.max_children = 8
pm.start_servers = 2
pm.min_spare_servers = 1
pm.max_spare_servers = 3
; Scripts see only what is listed here (env[NAME] = $NAME passes a variable of the app's environment).
clear_env = yes
catch_workers_output = yes
decorate_workers_output = no
; Only .php files run, whatever a request names.
security.limit_extensions = .php
; The document root the gateway sends as SCRIPT_FILENAME's base: %s
`, user, a.dir)
}
