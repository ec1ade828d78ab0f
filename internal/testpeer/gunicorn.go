package testpeer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Paths of Debian's Python and gunicorn. The python3 first in PATH on developer machines may be another
// interpreter without Django or Flask, so the peers always use these.
const (
	DebianPython = "/usr/bin/python3"
	Gunicorn     = "/usr/bin/gunicorn"
)

// PeerStartTimeout bounds how long a launcher waits for a peer to accept connections (Python servers
// import Django on a loaded two-core CI machine).
const PeerStartTimeout = 30 * time.Second

// ExamplesDir returns the directory holding the example applications (RepoRoot()/deploy/examples).
func ExamplesDir() string { return filepath.Join(RepoRoot(), "deploy", "examples") }

// needFile ends the test (skip or fail, see Missing) unless path exists.
func needFile(t testing.TB, path, hint string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Missing(t, path+" not found; "+hint)
	}
}

// needPythonModule ends the test (skip or fail, see Missing) unless Debian's Python can import module.
func needPythonModule(t testing.TB, module, hint string) {
	t.Helper()
	needFile(t, DebianPython, "apt-get install python3")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, DebianPython, "-c", "import "+module).CombinedOutput(); err != nil {
		Missing(t, "python module "+module+" not importable by "+DebianPython+" ("+strings.TrimSpace(string(out))+"); "+hint)
	}
}

// DjangoProject returns the Django example project directory (ExamplesDir()/django, project package
// mysite, app shop), after checking that Debian's Python can import Django. Nothing is copied: peers run
// from the tree, with PYTHONDONTWRITEBYTECODE set so they leave no bytecode in it.
func DjangoProject(t testing.TB) string {
	t.Helper()
	needPythonModule(t, "django", "apt-get install python3-django")
	return filepath.Join(ExamplesDir(), "django")
}

// FlaskApp returns the Flask example directory (ExamplesDir()/flask, WSGI app "app:app"), after checking
// that Debian's Python can import Flask.
func FlaskApp(t testing.TB) string {
	t.Helper()
	needPythonModule(t, "flask", "apt-get install python3-flask")
	return filepath.Join(ExamplesDir(), "flask")
}

// CollectStatic runs `manage.py collectstatic --noinput` in the Django project dir with STATIC_ROOT set to
// a fresh temporary directory, and returns that directory: hashed copies (shop/site.<hash>.css) and
// staticfiles.json are in it. Start the app with "DJANGO_STATIC_ROOT="+staticRoot in its environment so
// {% static %} finds the manifest (with DEBUG off, Django answers 500 for a page with a static link otherwise).
func CollectStatic(t testing.TB, dir string) (staticRoot string) {
	t.Helper()
	staticRoot = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, DebianPython, "manage.py", "collectstatic", "--noinput")
	cmd.Dir = dir
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + staticRoot, "LANG=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1", "DJANGO_STATIC_ROOT=" + staticRoot,
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("collectstatic in %s: %v\n%s", dir, err, out)
	}
	return staticRoot
}

// StartGunicorn runs Debian's gunicorn serving appModule (e.g. "mysite.wsgi" or "app:app") from dir, bound
// to bind ("unix:/path" or "127.0.0.1:port"), and returns once it accepts connections. It runs 2 workers
// with 4 threads each (gthread, so slow and streaming requests do not block the others), a 30 s worker
// timeout and access logs to the captured output. The process is stopped when the test ends.
//
// env is added to a minimal environment (PATH, HOME, LANG, PYTHONDONTWRITEBYTECODE=1). gunicorn reads
// some settings from it: FORWARDED_ALLOW_IPS ("*" or a list; gunicorn's default is 127.0.0.1) decides whose
// X-Forwarded-Proto and SCRIPT_NAME headers it trusts, SCRIPT_NAME sets a fixed mount prefix, and
// GUNICORN_CMD_ARGS adds any other flag. Over a unix socket gunicorn trusts those headers from every peer.
func StartGunicorn(t testing.TB, dir, appModule, bind string, env ...string) *Process {
	t.Helper()
	needFile(t, Gunicorn, "apt-get install gunicorn")
	network, addr := "tcp", bind
	if path, ok := strings.CutPrefix(bind, "unix:"); ok {
		network, addr = "unix", path
	}
	env = append([]string{"PYTHONDONTWRITEBYTECODE=1"}, env...)
	p := Start(t, dir, env, Gunicorn,
		"--bind", bind,
		"--workers", "2",
		"--threads", "4",
		"--timeout", "30",
		"--graceful-timeout", "5",
		"--chdir", dir,
		"--access-logfile", "-",
		"--error-logfile", "-",
		appModule,
	)
	WaitDial(t, p, network, addr, PeerStartTimeout)
	return p
}
