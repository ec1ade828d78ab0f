package static

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// collectstaticScript runs Django's collectstatic without a project: settings in code, the admin's static
// files, ManifestStaticFilesStorage (STORAGES from Django 4.2, STATICFILES_STORAGE before).
const collectstaticScript = `
import sys
import django
from django.conf import settings
manifest = 'django.contrib.staticfiles.storage.ManifestStaticFilesStorage'
extra = {}
if django.VERSION >= (4, 2):
    extra['STORAGES'] = {'default': {'BACKEND': 'django.core.files.storage.FileSystemStorage'},
                         'staticfiles': {'BACKEND': manifest}}
else:
    extra['STATICFILES_STORAGE'] = manifest
settings.configure(
    INSTALLED_APPS=['django.contrib.staticfiles', 'django.contrib.admin.apps.SimpleAdminConfig',
                    'django.contrib.auth', 'django.contrib.contenttypes'],
    STATIC_ROOT=sys.argv[1], STATIC_URL='/static/', **extra)
django.setup()
from django.core.management import call_command
call_command('collectstatic', interactive=False, verbosity=0)
`

func TestDjangoCollectstatic(t *testing.T) {
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import django").Run(); err != nil {
		testpeer.Missing(t, "Django for "+python+" not found; apt-get install python3-django")
	}
	out := filepath.Join(t.TempDir(), "static")
	cmd := exec.Command(python, "-c", collectstaticScript, out)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "LANG=C.UTF-8"}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("collectstatic: %v\n%s", err, b)
	}
	var manifest struct {
		Paths map[string]string `json:"paths"`
	}
	raw, err := os.ReadFile(filepath.Join(out, "staticfiles.json"))
	must(t, err)
	must(t, json.Unmarshal(raw, &manifest))
	hashed := manifest.Paths["admin/css/base.css"]
	if hashed == "" || hashed == "admin/css/base.css" {
		t.Fatalf("manifest has no hashed name for admin/css/base.css: %q", hashed)
	}
	want, err := os.ReadFile(filepath.Join(out, "admin", "css", "base.css"))
	must(t, err)

	srv := httptest.NewServer(build(t, "file://"+out, "/static"))
	defer srv.Close()
	tests := []struct {
		name string
		exchange
	}{
		{"the original name is served and revalidated", exchange{path: "/static/admin/css/base.css", status: 200,
			body: string(want), want: map[string]string{"Content-Type": "text/css; charset=utf-8", "Cache-Control": DefaultCacheControl}}},
		{"the manifest's hashed name is served as immutable", exchange{path: "/static/" + hashed, status: 200,
			want: map[string]string{"Content-Type": "text/css; charset=utf-8", "Cache-Control": "public, max-age=31536000, immutable"}}},
		{"the manifest itself is served as JSON", exchange{path: "/static/staticfiles.json", status: 200,
			want: map[string]string{"Content-Type": "application/json"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { run(t, srv, tc.exchange) })
	}
}
