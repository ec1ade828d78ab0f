package testpeer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartProject creates a Django project named name with `django-admin startproject`, exactly as the
// framework generates it (DEBUG on, ALLOWED_HOSTS empty so only localhost, 127.0.0.1 and [::1] are
// served, the admin at /admin/, SQLite), in a fresh temporary directory, and returns that directory (the
// WSGI module is name+".wsgi"). Nothing is changed in it; callers that add views write them themselves. It
// ends the test (see Missing) when Debian's Django is absent.
func StartProject(t testing.TB, name string) string {
	t.Helper()
	needPythonModule(t, "django", "apt-get install python3-django")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, DebianPython, "-m", "django", "startproject", name, dir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("django-admin startproject %s: %v\n%s", name, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, name, "settings.py")); err != nil {
		t.Fatalf("startproject made no settings.py: %v", err)
	}
	return dir
}
