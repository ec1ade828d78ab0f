package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gateway-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "gateway")
	out, err := exec.Command("go", "build", "-race", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the gateway: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestCheckPrintsTheRouteTable(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"check"}, []string{
		"GATEWAY_PRIMARY=http://127.0.0.1:8000",
		"GATEWAY_DELEGATES=http://127.0.0.1:9000",
		"GATEWAY_ROUTES=/api/=http://127.0.0.1:3000?strip_prefix=true,/legacy/=unix:///run/gunicorn.sock,admin.example.com/=status:403",
	}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{"admin.example.com/", "/legacy/", "/api/", "unix:///run/gunicorn.sock", "http://127.0.0.1:9000", "configuration ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %q:\n%s", want, out.String())
		}
	}
	// The most specific route is listed first, the primary and delegates last.
	if strings.Index(out.String(), "admin.example.com/") > strings.Index(out.String(), "/api/") {
		t.Errorf("routes not in matching order:\n%s", out.String())
	}
}

// With nothing configured, check shows the built-in demo's apps as coming from the demo, not from
// variables the user never set.
func TestCheckNamesTheDemoAsTheSourceOfItsApps(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	table, _, _ := strings.Cut(out.String(), "settings:")
	if strings.Count(table, "built-in demo") != 2 || strings.Contains(table, "GATEWAY_PRIMARY") || strings.Contains(table, "GATEWAY_DELEGATES") {
		t.Errorf("the demo's two apps should come from the built-in demo:\n%s", table)
	}
}

func TestCheckWarnsOfTheSameAppUnderTwoScriptNames(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"check"}, []string{
		"GATEWAY_PRIMARY=uwsgi://127.0.0.1:3031",
		"GATEWAY_ROUTES=/shop/=uwsgi://127.0.0.1:3031,/blog/=uwsgi://127.0.0.1:3031?script_name=",
	}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := `warning: GATEWAY_ROUTES: route /shop/: the app uwsgi://127.0.0.1:3031 is the app of GATEWAY_PRIMARY but gets SCRIPT_NAME="/shop"`
	if !strings.Contains(out.String(), want) || strings.Count(out.String(), "warning:") != 1 {
		t.Errorf("check output should hold one warning, for /shop/ only (%q):\n%s", want, out.String())
	}
}

func TestInvalidConfigurationNamesVariableValueAndExpectation(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"a bad duration", []string{"GATEWAY_UPSTREAM_TIMEOUT=soon"}, []string{`GATEWAY_UPSTREAM_TIMEOUT="soon"`, "expected a non-negative duration"}},
		{"a bad size", []string{"GATEWAY_MAX_BODY_SIZE=lots"}, []string{`GATEWAY_MAX_BODY_SIZE="lots"`, "expected a byte count"}},
		{"a bad status", []string{"GATEWAY_PASS_STATUS=404,abc"}, []string{`GATEWAY_PASS_STATUS="404,abc"`, "expected HTTP statuses"}},
		{"a bad CIDR", []string{"GATEWAY_TRUSTED_PROXIES=10.0.0.0/33"}, []string{`GATEWAY_TRUSTED_PROXIES="10.0.0.0/33"`, "expected an address range"}},
		{"a bad route", []string{"GATEWAY_ROUTES=/a/{id}/=http://x"}, []string{"GATEWAY_ROUTES", `"/a/{id}/"`, "literal prefixes"}},
		{"an unknown scheme", []string{"GATEWAY_PRIMARY=gopher://x"}, []string{"GATEWAY_PRIMARY", `unknown scheme "gopher"`, "expected one of"}},
		{"a misspelt variable", []string{"GATEWAY_PRIMRY=http://x"}, []string{"GATEWAY_PRIMRY: unknown variable"}},
		{"a PHP document root that does not exist", []string{"GATEWAY_ROUTES=/php/=fastcgi://127.0.0.1:9000?root=/nonexistent/www"},
			[]string{"GATEWAY_ROUTES: route /php/", `option root="/nonexistent/www": no such file or directory`}},
		{"several problems at once", []string{"GATEWAY_LOG_FORMAT=xml", "GATEWAY_ADDR=nowhere"}, []string{"GATEWAY_LOG_FORMAT", "GATEWAY_ADDR"}},
		{"a bad setting and a bad route at once", []string{"GATEWAY_LOG_FORMAT=xml", "GATEWAY_ROUTES=/a/{id}/=http://x,/b/=http://y?strip_prefix=perhaps"},
			[]string{"GATEWAY_LOG_FORMAT", `GATEWAY_ROUTES: route pattern "/a/{id}/"`, `GATEWAY_ROUTES: route /b/: app "http://y?strip_prefix=perhaps": option strip_prefix="perhaps"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run([]string{"check"}, tt.env, &out, &errb); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
		})
	}
}

// One run of gateway check reports every problem: a bad setting, a bad route key and what only building
// the apps finds (a missing FastCGI root, an option of the app's kind) come in one report.
func TestOneReportHoldsSettingsRoutesAndBuildProblems(t *testing.T) {
	env := []string{"GATEWAY_LOG_FORMAT=xml",
		"GATEWAY_ROUTES=/php/=fastcgi://127.0.0.1:9000?root=/nonexistent/www,/slow/=http://127.0.0.1:3000?timeout=forever,/a/=status:200?cascade=maybe"}
	var out, errb bytes.Buffer
	if code := run([]string{"check"}, env, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
	}
	for _, want := range []string{"GATEWAY_LOG_FORMAT", "/nonexistent/www", `timeout="forever"`, `option cascade="maybe"`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("the report does not name %s:\n%s", want, errb.String())
		}
	}
}

// A primary the settings' check refuses is not reported a second time by the plan's.
func TestABadPrimaryIsReportedOnce(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"check"}, []string{"GATEWAY_PRIMARY=127.0.0.1:8000", "GATEWAY_LOG_LEVEL=loud", "GATEWAY_ROUTES=/a/=status:200?cascade=maybe"}, &out, &errb); code != 2 {
		t.Fatalf("exit %d, want 2; stderr %s", code, errb.String())
	}
	if n := strings.Count(errb.String(), "GATEWAY_PRIMARY"); n != 1 || !strings.Contains(errb.String(), "GATEWAY_LOG_LEVEL") || !strings.Contains(errb.String(), `option cascade="maybe"`) {
		t.Fatalf("GATEWAY_PRIMARY named %d times; stderr:\n%s", n, errb.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, nil, &out, io.Discard); code != 0 || !strings.HasPrefix(out.String(), "gateway ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
}

// gatewayProcess runs the built binary and returns its address once it logs that it listens.
func gatewayProcess(t *testing.T, env ...string) (*exec.Cmd, string, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(binary)
	cmd.Env = append([]string{"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_ADMIN_ADDR=127.0.0.1:0"}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "addr="); i >= 0 && strings.Contains(line, "gateway listening") {
			addr := strings.Fields(line[i+len("addr="):])[0]
			return cmd, addr, sc
		}
	}
	t.Fatalf("gateway exited before listening")
	return nil, "", nil
}

// waitLog reads the gateway's log until a line contains s.
func waitLog(t *testing.T, sc *bufio.Scanner, s string) {
	t.Helper()
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return
		}
	}
	t.Fatalf("log ended without %q", s)
}

func TestSIGTERMDrainsASlowRequest(t *testing.T) {
	arrived := make(chan struct{})
	finish := make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		<-finish
		io.WriteString(w, "slow answer")
	}))
	defer slow.Close()
	cmd, addr, logs := gatewayProcess(t, "GATEWAY_PRIMARY="+slow.URL)

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			res <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{string(b), err}
	}()
	<-arrived
	if !listening(t, cmd.Process.Pid, addr) {
		t.Fatal("the running gateway's listening socket is not found (the check below could not fail)")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "listener closed; draining")
	// Once draining, the gateway accepts no new connections: it holds no listening socket on its port
	// (a dial cannot tell: the freed port may go to another test's listener meanwhile).
	if listening(t, cmd.Process.Pid, addr) {
		t.Errorf("gateway still accepts connections while draining")
	}
	close(finish)
	r := <-res
	if r.err != nil || r.body != "slow answer" {
		t.Fatalf("request in flight during SIGTERM: %q, %v", r.body, r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gateway exit: %v", err)
	}
}

func TestDemoServesWithoutConfiguration(t *testing.T) {
	_, addr, logs := gatewayProcess(t)
	_ = logs
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/", 200, "Switchyard demo"},
		{"/api/hello?name=ci", 200, `"hello":"ci"`},
		{"/orders/42", 200, "legacy app: order 42"},
		{"/nowhere", 404, "legacy app: nothing at /nowhere"},
	} {
		resp, err := http.Get("http://" + addr + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.path, resp.StatusCode, b, tc.status, tc.want)
		}
	}
}

func TestCheckWarnsAboutAUnixSocketInAMissingDirectory(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"check"}, []string{"GATEWAY_ROUTES=/app/=unix:///nonexistent/gunicorn/app.sock?strip_prefix=true"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := `warning: GATEWAY_ROUTES: route /app/: app "unix:///nonexistent/gunicorn/app.sock?strip_prefix=true": the directory /nonexistent/gunicorn of the unix socket /nonexistent/gunicorn/app.sock does not exist`
	if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "configuration ok") {
		t.Fatalf("check output lacks %q:\n%s", want, out.String())
	}
}

func TestAnUnknownCommandIsRefusedWithTheClosestOne(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{"chek", `gateway: unknown command "chek" (did you mean "check"?)`},
		{"serv", `gateway: unknown command "serv" (did you mean "serve"?)`},
		{"reprot", `gateway: unknown command "reprot" (did you mean "report"?)`},
		{"xyzzy", `gateway: unknown command "xyzzy"` + "\n"},
	} {
		var errOut bytes.Buffer
		if code := run([]string{tc.cmd}, nil, io.Discard, &errOut); code != 2 || !strings.HasPrefix(errOut.String(), tc.want) || !strings.Contains(errOut.String(), "usage: gateway") {
			t.Errorf("gateway %s: exit %d, stderr %q; want 2 and %q then the usage", tc.cmd, code, errOut.String(), tc.want)
		}
	}
}

// listening reports whether process pid holds a listening TCP socket on addr's port: its descriptors'
// socket inodes against /proc/net/tcp and tcp6.
func listening(t *testing.T, pid int, addr string) bool {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	want, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil {
			if s, ok := strings.CutPrefix(l, "socket:["); ok {
				inodes[strings.TrimSuffix(s, "]")] = true
			}
		}
	}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)        // sl local_address rem_address st ... inode
			if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil && int(n) == want && inodes[f[9]] {
				return true
			}
		}
	}
	return false
}
