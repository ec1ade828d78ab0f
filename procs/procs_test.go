package procs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as the app the tests run: with PROCS_TEST_APP set (in the Spec's own
// environment: nothing is inherited) it plays that role instead of running the tests.
func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv("PROCS_TEST_APP"); ok {
		testApp(mode)
		return
	}
	os.Exit(m.Run())
}

// testApp listens on $SOCKET or 127.0.0.1:$PORT and answers every request with its sorted environment.
func testApp(mode string) {
	fmt.Println("test app starting, mode", mode)
	switch mode {
	case "exit3":
		fmt.Fprintln(os.Stderr, "cannot import settings")
		os.Exit(3)
	case "hang":
		select {}
	case "flood":
		fmt.Println(strings.Repeat("x", 3*maxLine) + " tail-of-long-line")
		fmt.Println("after the long line")
	}
	if mode == "uid" {
		groups, _ := os.Getgroups()
		fmt.Printf("uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups)
	}
	if mode == "bootfail" { // like gunicorn whose workers cannot load the app: it accepts, answers nothing, exits
		ln, err := net.Listen("unix", os.Getenv("SOCKET"))
		if err == nil {
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_ = c // held open, never answered
				}
			}()
		}
		time.Sleep(300 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "Worker failed to boot.")
		os.Exit(3)
	}
	if mode == "ignore-term" {
		signal.Ignore(syscall.SIGTERM)
	}
	var ln net.Listener
	var err error
	if s := os.Getenv("SOCKET"); s != "" {
		ln, err = net.Listen("unix", s)
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:"+os.Getenv("PORT"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		fmt.Fprintf(w, "%s\n", strings.Join(env, "\n"))
	}))
}

// logBuf is a goroutine-safe log sink.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func newManager(t *testing.T) (*Manager, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	dir, err := os.MkdirTemp("", "procs-")
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(Options{Logger: slog.New(slog.NewTextHandler(logs, nil)), RuntimeDir: dir,
		LookupEnv: func(k string) (string, bool) {
			return map[string]string{"LANG": "C.UTF-8", "SECRET": "gateway-only"}[k], k == "LANG" || k == "SECRET"
		}})
	if err != nil {
		t.Fatal(err)
	}
	m.backoffMin, m.pollEvery = 10*time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() {
		m.Shutdown()
		os.RemoveAll(dir)
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	})
	return m, logs
}

func self(t *testing.T) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func spec(t *testing.T, name, mode string) Spec {
	return Spec{Name: name, Command: []string{self(t), "-test.run=^$", "--socket={socket}"}, Env: map[string]string{"PROCS_TEST_APP": mode},
		StartTimeout: 20 * time.Second, StopTimeout: 5 * time.Second, Source: "test"}
}

// get asks the instance at a for its environment.
func get(t *testing.T, a Addr) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, a.Network, a.Address)
	}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://app/")
	if err != nil {
		t.Fatalf("GET on %s: %v", a.Address, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestInstancesGetTheirOwnEnvironmentAndAddress(t *testing.T) {
	m, logs := newManager(t)
	s := spec(t, "site-a", "serve")
	s.Instances = 2
	s.Env["DJANGO_SETTINGS_MODULE"] = "portal.settings_a"
	s.Env["BIND"] = "unix:{socket}"
	s.Inherit = []string{"LANG", "NOT_SET"}
	p, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	addrs := p.Addrs("site-a")
	if len(addrs) != 2 || addrs[0] == addrs[1] {
		t.Fatalf("addresses %v", addrs)
	}
	for i, a := range addrs {
		want := strings.Join([]string{"BIND=unix:" + a.Address, "DJANGO_SETTINGS_MODULE=portal.settings_a", "LANG=C.UTF-8", "PROCS_TEST_APP=serve", "SOCKET=" + a.Address}, "\n") + "\n"
		if got := get(t, a); got != want {
			t.Errorf("instance %d environment:\n%s\nwant exactly:\n%s", i, got, want)
		}
	}
	if !strings.Contains(logs.String(), "app=site-a instance=1") || !strings.Contains(logs.String(), "test app starting, mode serve") {
		t.Errorf("output lines are not logged with the app and instance:\n%s", logs.String())
	}
}

// A program named with a relative path is found in the app's directory, even when that directory is
// itself relative to the gateway's.
func TestRelativeProgramInRelativeDirectory(t *testing.T) {
	m, _ := newManager(t)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(wd, "reldir-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := os.ReadFile(self(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "app"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	s := spec(t, "rel", "serve")
	s.Dir = filepath.Base(dir)
	s.Command[0] = "./app"
	p, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	get(t, p.Addrs("rel")[0])
}

func TestTCPInstanceGetsPortAndPlaceholders(t *testing.T) {
	m, _ := newManager(t)
	s := spec(t, "node", "serve")
	s.Network = "tcp"
	s.Command = []string{self(t), "-test.run=^$", "--listen={addr}", "--port={port}"}
	p, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	a := p.Addrs("node")[0]
	if a.Network != "tcp" || !strings.HasPrefix(a.Address, "127.0.0.1:") {
		t.Fatalf("address %v", a)
	}
	if got := get(t, a); !strings.Contains(got, "PORT="+a.Port()+"\n") || !strings.Contains(got, "HOST=127.0.0.1\n") {
		t.Fatalf("environment:\n%s", got)
	}
	st := m.Status()
	if len(st) != 1 || st[0].State != StateRunning || st[0].PID == 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestStartFailuresAreErrorsNamingAppCommandAndCause(t *testing.T) {
	m, _ := newManager(t)
	exits := spec(t, "exits", "exit3")
	hangs := spec(t, "hangs", "hang")
	hangs.StartTimeout = 300 * time.Millisecond
	missing := spec(t, "missing", "serve")
	missing.Command = []string{"no-such-program-here", "{socket}"}
	nodir := spec(t, "nodir", "serve")
	nodir.Dir = "/no/such/dir"
	unknown := spec(t, "unknown", "serve")
	unknown.Command = append(unknown.Command, "{sokcet}")
	good := spec(t, "good", "serve")
	// A shell command reading the address variable of the other kind (a Procfile's unix:$SOCKET routed
	// as http://{addr}) would listen where the gateway never connects: refused before anything starts.
	portOnSocket := spec(t, "port-on-socket", "serve")
	portOnSocket.Command = []string{"/bin/sh", "-c", "exec true --port $PORT --socket {socket}"}
	socketOnPort := spec(t, "socket-on-port", "serve")
	socketOnPort.Command = []string{"/bin/sh", "-c", "exec true --bind unix:${SOCKET} --port {port}"}
	socketOnPort.Network = "tcp" // (the app URL says: http://{addr})
	for _, tc := range []struct {
		name  string
		specs []Spec
		want  []string
	}{
		{"an app that exits at once", []Spec{good, exits}, []string{`run app "exits"`, "exit status 3", "cannot import settings", "before it was ready"}},
		{"an app that hangs on start", []Spec{hangs}, []string{`run app "hangs"`, "did not accept connections", "start timeout"}},
		{"a program that does not exist", []Spec{missing}, []string{`run app "missing"`, `program "no-such-program-here" not found`}},
		{"a working directory that does not exist", []Spec{nodir}, []string{`run app "nodir"`, `working directory "/no/such/dir"`}},
		{"an unknown placeholder", []Spec{unknown}, []string{`run app "unknown"`, "unknown placeholder {sokcet}"}},
		{"a name given twice", []Spec{good, good}, []string{`run app "good" is declared twice`}},
		{"$PORT in the command of an app on a unix socket", []Spec{portOnSocket}, []string{`run app "port-on-socket"`, "reads $PORT, which the gateway sets only for an app on a loopback port, but this app's URL is on a unix socket"}},
		{"$SOCKET in the command of an app on a port", []Spec{socketOnPort}, []string{`run app "socket-on-port"`, "reads $SOCKET, which the gateway sets only for an app on a unix socket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Prepare(context.Background(), tc.specs, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if st := m.Status(); len(st) != 0 {
				t.Errorf("a failed Prepare left instances: %+v", st)
			}
			m.mu.Lock()
			n := len(m.live)
			m.mu.Unlock()
			if n != 0 {
				t.Errorf("a failed Prepare left %d groups running", n)
			}
		})
	}
}

// waitFor polls cond (bounded) until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestKilledInstanceIsRestartedOnItsAddress(t *testing.T) {
	restarts := make(chan string, 10)
	type served struct{ app, addr, state string }
	serving := make(chan served, 10)
	m, logs := newManager(t)
	m.onRestart = func(app string) { restarts <- app }
	m.onServing = func(app, addr string) { serving <- served{app, addr, m.Status()[0].State} }
	p, err := m.Prepare(context.Background(), []Spec{spec(t, "web", "serve")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if len(serving) != 0 {
		t.Fatal("the first start was reported as serving again")
	}
	pid := m.Status()[0].PID
	syscall.Kill(pid, syscall.SIGKILL)
	if app := <-restarts; app != "web" {
		t.Fatalf("restart of %q", app)
	}
	waitFor(t, "the restarted instance to accept", func() bool { st := m.Status()[0]; return st.State == StateRunning && st.PID != pid })
	// The apps were told it serves again, before it showed as running (whoever sees it running finds
	// it back in service).
	if sv := <-serving; sv.app != "web" || sv.addr != p.Addrs("web")[0].Address || sv.state == StateRunning {
		t.Fatalf("serving again: %+v", sv)
	}
	st := m.Status()[0]
	if st.Restarts != 1 || st.LastExit != "signal: killed" {
		t.Fatalf("status %+v", st)
	}
	get(t, p.Addrs("web")[0])
	if !strings.Contains(logs.String(), "run app instance exited; restarting") || !strings.Contains(logs.String(), `exit="signal: killed"`) {
		t.Fatalf("no log line with the exit status:\n%s", logs.String())
	}
}

func TestCrashLoopGivesUp(t *testing.T) {
	m, logs := newManager(t)
	m.crashLimit = 2
	p, err := m.Prepare(context.Background(), []Spec{spec(t, "web", "serve")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	// Every restart is killed at once, as if it crashed on its first request.
	for i := 0; i < 3; i++ {
		waitFor(t, "a running process", func() bool { return m.Status()[0].PID != 0 || m.Status()[0].State == StateFailed })
		if pid := m.Status()[0].PID; pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		waitFor(t, "the exit", func() bool { st := m.Status()[0]; return st.PID == 0 || st.Restarts > i })
	}
	waitFor(t, "the instance to be given up", func() bool { return m.Status()[0].State == StateFailed })
	if !strings.Contains(logs.String(), "keeps exiting") {
		t.Fatalf("log:\n%s", logs.String())
	}
	// A restart of the app starts it afresh.
	p2, err := m.Prepare(context.Background(), []Spec{spec(t, "web", "serve")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p2.Commit()
	if len(p2.Started()) != 1 {
		t.Fatal("a failed app with an unchanged spec was not started again")
	}
}

func TestIgnoredSIGTERMGetsSIGKILLAfterStopTimeout(t *testing.T) {
	m, logs := newManager(t)
	s := spec(t, "stubborn", "ignore-term")
	s.StopTimeout = 200 * time.Millisecond
	p, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	pid := m.Status()[0].PID
	m.Shutdown()
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Fatalf("process %d still exists after Shutdown (kill 0: %v)", pid, err)
	}
	if !strings.Contains(logs.String(), "did not exit after SIGTERM; sending SIGKILL") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

func TestFloodedOutputIsCutPerLine(t *testing.T) {
	m, logs := newManager(t)
	p, err := m.Prepare(context.Background(), []Spec{spec(t, "loud", "flood")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	waitFor(t, "the line after the long one", func() bool { return strings.Contains(logs.String(), "after the long line") })
	if strings.Contains(logs.String(), "tail-of-long-line") || !strings.Contains(logs.String(), "truncated=true") {
		t.Fatalf("the long line was not cut")
	}
}

// A changed spec starts new instances; the old ones serve until the gateway using them is released.
func TestReplacedGroupStopsOnlyAfterRelease(t *testing.T) {
	m, _ := newManager(t)
	s := spec(t, "site", "serve")
	s.Env["VERSION"] = "1"
	p1, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	release1 := p1.Commit()
	old := p1.Addrs("site")[0]

	same, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(same.Started()) != 0 || same.Addrs("site")[0] != old {
		t.Fatal("an unchanged spec started new instances")
	}
	s.Env["VERSION"] = "2"
	p2, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	release2 := p2.Commit()
	defer release2()
	neu := p2.Addrs("site")[0]
	if neu == old || !strings.Contains(get(t, neu), "VERSION=2\n") {
		t.Fatal("the new instance does not run the new spec")
	}
	if !strings.Contains(get(t, old), "VERSION=1\n") {
		t.Fatal("the old instance stopped before its gateway was released")
	}
	release1()
	waitFor(t, "the old instance to stop", func() bool { _, err := os.Stat(old.Address); return os.IsNotExist(err) && !dialOK(old) })
	if st := m.Status(); len(st) != 1 || st[0].Address != neu.Address {
		t.Fatalf("status %+v", st)
	}
}

func TestSplitCommand(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{"gunicorn --bind unix:{socket} mysite.wsgi", []string{"gunicorn", "--bind", "unix:{socket}", "mysite.wsgi"}, ""},
		{`node "my app.js" 'a b' c\ d`, []string{"node", "my app.js", "a b", "c d"}, ""},
		{`echo "say \"hi\""`, []string{"echo", `say "hi"`}, ""},
		{"gunicorn -b 0.0.0.0:$PORT app", nil, "needs a shell"},
		{"a && b", nil, "needs a shell"},
		{`echo "$HOME"`, nil, "needs a shell"},
		{"echo 'unterminated", nil, "unterminated"},
		{"'$literal'", []string{"$literal"}, ""},
	} {
		got, err := SplitCommand(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, "\x00") != strings.Join(tc.want, "\x00") {
			t.Errorf("%q: %q %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseProcfile(t *testing.T) {
	got, err := ParseProcfile("Procfile", []byte("# apps\nweb: gunicorn -b unix:$SOCKET app.wsgi\n\nworker:   node server.js\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (ProcfileEntry{"web", 2, "gunicorn -b unix:$SOCKET app.wsgi"}) || got[1] != (ProcfileEntry{"worker", 4, "node server.js"}) {
		t.Fatalf("%+v", got)
	}
	for in, want := range map[string]string{
		"web gunicorn\n":        "Procfile:1: expected NAME: command",
		"web: a\nweb: b\n":      "Procfile:2: web is given twice (first on line 1)",
		"web:\n":                "Procfile:1: web has no command",
		"ok: a\nbad name!: x\n": "Procfile:2:",
	} {
		if _, err := ParseProcfile("Procfile", []byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", in, err, want)
		}
	}
	if got := ProcfileArgv("gunicorn app"); got[2] != "exec gunicorn app" {
		t.Errorf("%q", got)
	}
	if got := ProcfileArgv("a && b"); got[2] != "a && b" {
		t.Errorf("%q", got)
	}
}

// As root, an app runs as the user and group it names, without root's supplementary groups, with its
// socket in a directory of its own that the gateway can still reach.
func TestRunAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: only a gateway running as root can run an app as another user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	// The test binary's build directory is root's alone: the app runs from a copy anyone can execute.
	dir, err := os.MkdirTemp("", "procs-user-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(self(t))
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "app")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	m, logs := newManager(t)
	s := spec(t, "as-nobody", "uid")
	s.Command[0] = exe
	s.User = "nobody"
	p, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	waitFor(t, "the app's line", func() bool { return strings.Contains(logs.String(), "uid="+nobody.Uid+" gid="+nobody.Gid+" groups=[]") })
	a := p.Addrs("as-nobody")[0]
	if filepath.Dir(a.Address) != filepath.Join(m.RuntimeDir(), "as-nobody") {
		t.Fatalf("socket %s is not in the app's own directory", a.Address)
	}
	get(t, a)
	fi, err := os.Stat(filepath.Dir(a.Address))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fmt.Sprint(st.Uid) != nobody.Uid || fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory owner %d mode %v", st.Uid, fi.Mode().Perm())
	}

	bad := spec(t, "ghost", "serve")
	bad.User = "no-such-user-here"
	if _, err := m.Prepare(context.Background(), []Spec{bad}, nil); err == nil || !strings.Contains(err.Error(), `user="no-such-user-here": no such user`) {
		t.Fatalf("error %v", err)
	}
}

// An on-demand app starts on its first use, which waits until it accepts; it stops after its idle
// timeout, never under a request in flight, and starts again on the next use.
func TestOnDemandStartsOnUseAndStopsWhenIdle(t *testing.T) {
	m, logs := newManager(t)
	s := spec(t, "lazy", "serve")
	s.OnDemand, s.IdleTimeout = true, 200*time.Millisecond
	p, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if st := m.Status(); len(st) != 1 || st[0].State != StateIdle || st[0].PID != 0 {
		t.Fatalf("before any use: %+v", st)
	}
	a := p.Addrs("lazy")[0]
	if dialOK(a) {
		t.Fatal("an on-demand app accepts before its first use")
	}
	release, err := p.Use(context.Background(), "lazy")
	if err != nil {
		t.Fatal(err)
	}
	get(t, a) // the first use returned once the app accepts
	first := m.Status()[0].PID
	// Held past the idle timeout: not stopped under a request in flight.
	time.Sleep(3 * s.IdleTimeout) // not synchronisation: the idle timeout must pass for the check to mean anything
	if st := m.Status()[0]; st.State != StateRunning || st.PID != first {
		t.Fatalf("stopped under a request in flight: %+v", st)
	}
	release()
	waitFor(t, "the idle stop", func() bool { return m.Status()[0].State == StateIdle && !dialOK(a) })
	if !strings.Contains(logs.String(), "run app idle; stopping it until its next request") {
		t.Fatal("the idle stop was not logged")
	}
	release, err = p.Use(context.Background(), "lazy")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if st := m.Status()[0]; st.State != StateRunning || st.PID == first {
		t.Fatalf("not started again: %+v", st)
	}
	get(t, a)
}

// An on-demand app that cannot start fails the requests that wanted it with the reason, and is not
// relaunched by every request.
func TestOnDemandStartFailure(t *testing.T) {
	m, logs := newManager(t)
	s := spec(t, "broken", "exit3")
	s.OnDemand = true
	p, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatalf("an on-demand app is started by Prepare: %v", err)
	}
	p.Commit()
	for i := 0; i < 3; i++ {
		if _, err := p.Use(context.Background(), "broken"); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("use %d: %v", i, err)
		}
	}
	if n := strings.Count(logs.String(), "test app starting"); n != 1 {
		t.Fatalf("launched %d times by 3 uses within a second", n)
	}
}

// With a probe path, an instance is ready when it answers HTTP, not when it accepts: an app server whose
// workers cannot load the app is a start failure, not a crash loop after "ready".
func TestProbeCatchesAnAppServerThatAcceptsThenFails(t *testing.T) {
	m, _ := newManager(t)
	s := spec(t, "boot", "bootfail")
	s.ProbePath = "/"
	if _, err := m.Prepare(context.Background(), []Spec{s}, nil); err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "Worker failed to boot.") {
		t.Fatalf("error %v", err)
	}
	ok := spec(t, "fine", "serve")
	ok.ProbePath = "/healthz"
	p, err := m.Prepare(context.Background(), []Spec{ok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
}

// An app on a fixed port listens there; a changed spec stops the old instance before the new one starts
// (the port cannot be listened on twice), on the same address.
func TestFixedPort(t *testing.T) {
	m, logs := newManager(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := spec(t, "fixed", "serve")
	s.Network, s.Port = "tcp", port
	s.Command = []string{self(t), "-test.run=^$"}
	s.Env["V"] = "1"
	p1, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p1.Commit()
	a := p1.Addrs("fixed")[0]
	if a.Port() != fmt.Sprint(port) || !strings.Contains(get(t, a), "PORT="+fmt.Sprint(port)+"\n") {
		t.Fatalf("address %v", a)
	}
	s.Env["V"] = "2"
	p2, err := m.Prepare(context.Background(), []Spec{s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p2.Commit()
	if p2.Addrs("fixed")[0] != a || !strings.Contains(get(t, a), "V=2\n") || !strings.Contains(logs.String(), "stopping its instances before starting the new ones") {
		t.Fatal("the fixed-port app was not replaced on its port")
	}
	s.Instances = 2
	if _, err := m.Prepare(context.Background(), []Spec{s}, nil); err == nil || !strings.Contains(err.Error(), "a fixed port holds one instance") {
		t.Fatalf("error %v", err)
	}
}

// Admit takes a request only when the app takes it at once, counting it as Use does; it never starts an
// on-demand app, which Use then does.
func TestAdmitTakesOnlyWhatTheAppServesAtOnce(t *testing.T) {
	m, _ := newManager(t)
	always := spec(t, "always", "serve")
	lazy := spec(t, "lazy", "serve")
	lazy.OnDemand, lazy.IdleTimeout = true, 200*time.Millisecond
	p, err := m.Prepare(context.Background(), []Spec{always, lazy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Commit()
	if _, ok := p.Admit("ghost"); ok {
		t.Fatal("admitted for an app the plan does not run")
	}
	release, ok := p.Admit("always")
	if !ok {
		t.Fatal("a running app was not admitted")
	}
	release()
	if _, ok := p.Admit("lazy"); ok {
		t.Fatal("admitted for an on-demand app not started")
	}
	if st := statusOf(m, "lazy"); st.State != StateIdle || st.PID != 0 {
		t.Fatalf("Admit started the on-demand app: %+v", st)
	}
	first, err := p.Use(context.Background(), "lazy")
	if err != nil {
		t.Fatal(err)
	}
	release, ok = p.Admit("lazy")
	if !ok {
		t.Fatal("a started on-demand app was not admitted")
	}
	first()
	// Held by Admit past the idle timeout: not stopped under the request it admitted.
	time.Sleep(3 * lazy.IdleTimeout) // not synchronisation: the idle timeout must pass for the check to mean anything
	if st := statusOf(m, "lazy"); st.State != StateRunning {
		t.Fatalf("stopped under a request Admit counted: %+v", st)
	}
	release()
	waitFor(t, "the idle stop", func() bool { return statusOf(m, "lazy").State == StateIdle })
	if _, ok := p.Admit("lazy"); ok {
		t.Fatal("admitted for an on-demand app stopped as idle")
	}
}

// statusOf is the status of app's first instance.
func statusOf(m *Manager, app string) Status {
	for _, st := range m.Status() {
		if st.App == app {
			return st
		}
	}
	return Status{}
}
