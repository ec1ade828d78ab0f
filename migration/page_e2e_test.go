package migration_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// unixApp serves h on a unix socket named name in dir and returns its APP URL.
func unixApp(t *testing.T, dir, name string, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(dir, name)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

// fitPage frames /migration in an iframe 1200 px wide and, once loaded, writes how wide its content is.
const fitPage = `<!doctype html><html><body style="margin:0">
<iframe id="f" src="/migration" width="1200" height="900" style="border:0"></iframe><pre id="out"></pre>
<script>
window.addEventListener("load", function () {
  var d = document.getElementById("f").contentDocument.documentElement;
  document.getElementById("out").textContent = "content=" + d.scrollWidth + " window=" + d.clientWidth;
});
</script></body></html>`

// TestTheReportPageFitsA1200PixelWindow fills the page with the longest labels apps get by default (unix
// sockets deep in a directory, several instances) and long paths, and checks in headless Chromium that
// nothing is wider than a 1200 px window; routes without a stage are rows of one table, not boxes.
func TestTheReportPageFitsA1200PixelWindow(t *testing.T) {
	chromium := testpeer.Need(t, "install the chromium Debian package", "chromium")[0]
	// A socket path near the 108-byte limit of sun_path gives about the longest label an app can have.
	dir := t.TempDir()
	if pad := 80 - len(dir); pad > 0 {
		dir = filepath.Join(dir, strings.Repeat("d", pad))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	product := func(price string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"sku":"TEA-1","description":"%s","price":%s,"path":%q}`, strings.Repeat("long text without spaces-", 20), price, r.URL.Path)
		}
	}
	newApp := unixApp(t, dir, "catalogue-new.sock", product("5.75"))
	oldShop := unixApp(t, dir, "shop-old-app.sock", product("5.25"))
	old1, old2 := app(t, product("5.25")), app(t, product("5.25"))
	oldPair := old1 + "|" + old2 + "?lb=round_robin"
	primary := app(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "primary") })
	g, front := build(t, map[string]string{
		"GATEWAY_PRIMARY": primary,
		"GATEWAY_ROUTES": strings.Join([]string{
			"/catalogue/products/=" + newApp + "?stage=shadow&old=" + url.QueryEscape(oldPair),
			"/shop/=" + newApp + "?stage=canary&canary=50&sticky=header:X-User&old=" + url.QueryEscape(oldShop),
			"/static/=" + oldShop,
		}, ","),
	})
	long := "/catalogue/products/" + strings.Repeat("x", 120) + "/reviews/" + strings.Repeat("9", 30)
	for i := 0; i < 3; i++ {
		fetch(t, front+long)
	}
	for i := 0; i < 10; i++ {
		req, _ := http.NewRequest("GET", front+"/shop/basket/"+strconv.Itoa(i), nil)
		req.Header.Set("X-User", strconv.Itoa(i))
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	fetch(t, front+"/static/site.css")
	fetch(t, front+"/")
	waitShadow(t, g, "/catalogue/products/", 3)

	mux := http.NewServeMux()
	for p, h := range g.Admin {
		mux.Handle(p, h)
	}
	mux.HandleFunc("/fit", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, fitPage) })
	admin := httptest.NewServer(mux)
	defer admin.Close()

	profile := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
			"--user-data-dir=" + filepath.Join(profile, "profile"), "--window-size=1200,2400", "--virtual-time-budget=10000"}
		cmd := exec.CommandContext(testpeer.Context(t), chromium, append(base, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+profile)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	m := regexp.MustCompile(`content=(\d+) window=(\d+)`).FindStringSubmatch(run("--dump-dom", admin.URL+"/fit"))
	if m == nil {
		t.Fatal("the frame page did not measure the report")
	}
	content, window := atoi(t, m[1]), atoi(t, m[2])
	if window < 1100 || content > window {
		t.Errorf("the report is %d px wide in a %d px window; want it to fit", content, window)
	}
	if out := os.Getenv("SWITCHYARD_SCREENSHOT_DIR"); out != "" {
		run("--screenshot="+filepath.Join(out, "migration-1200.png"), admin.URL+"/migration")
	}

	dom := run("--dump-dom", admin.URL+"/migration")
	for _, pattern := range []string{"/static/", "*"} {
		if strings.Contains(dom, `<section class="route" data-pattern="`+pattern+`"`) {
			t.Errorf("route %s has no stage but got a box of its own", pattern)
		}
		if !strings.Contains(dom, `<tr data-pattern="`+pattern+`">`) {
			t.Errorf("route %s is not a row of the table of routes without a stage", pattern)
		}
	}
	for _, pattern := range []string{"/catalogue/products/", "/shop/"} {
		if !strings.Contains(dom, `<section class="route" data-pattern="`+pattern+`"`) {
			t.Errorf("route %s has a stage but no box", pattern)
		}
	}
	if t.Failed() {
		t.Logf("DOM:\n%.8000s", dom)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
