// Package testpeer owns the plumbing that end-to-end tests use to run real peers (gunicorn, uWSGI, PHP-FPM,
// Node) as child processes on loopback or unix sockets: finding their binaries, starting them with their
// output captured, waiting until they accept connections, and stopping them when the test ends.
//
// A missing peer skips the test with one line saying what to install, unless SWITCHYARD_REQUIRE_PEERS=1
// (set by .ci/run), which turns that skip into a failure so CI can never pass by skipping.
package testpeer

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the variable that turns a missing-peer skip into a failure.
const RequireEnv = "SWITCHYARD_REQUIRE_PEERS"

// Need returns the path of each named program (looked up in PATH, then /usr/sbin and /usr/bin), or ends the
// test: skipped with the install hint, or failed when RequireEnv=1.
func Need(t testing.TB, hint string, programs ...string) []string {
	t.Helper()
	var paths []string
	for _, p := range programs {
		path, err := exec.LookPath(p)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
				if fi, e := os.Stat(filepath.Join(dir, p)); e == nil && !fi.IsDir() {
					path, err = filepath.Join(dir, p), nil
					break
				}
			}
		}
		if err != nil {
			Missing(t, p+" not found; "+hint)
		}
		paths = append(paths, path)
	}
	return paths
}

// Missing ends the test because a peer or a file it needs is absent.
func Missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("required peer missing (%s=1): %s", RequireEnv, msg)
	}
	t.Skip("skipping: " + msg)
}

// RepoRoot returns the module root (the directory holding go.mod). It is found from the working directory
// first (go test runs a test binary in its package's directory), and from this source file's
// compiled-in path only when that fails (a test that changed directory): with several checkouts of the
// repository (git worktrees) sharing one build cache, the compiled-in path was seen to name another
// checkout, whose node_modules or examples are not the ones under test.
func RepoRoot() string {
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if mod, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
				if bytes.HasPrefix(mod, []byte("module "+modulePath+"\n")) || bytes.Contains(mod, []byte("\nmodule "+modulePath+"\n")) {
					return dir
				}
				break // another module's go.mod: not inside this repository's tree
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// modulePath is this repository's module path, as its go.mod declares it.
const modulePath = "github.com/switchyard/switchyard"

// Process is a running peer.
type Process struct {
	Cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
	err    error
}

// Output returns what the peer printed so far (stdout and stderr interleaved).
func (p *Process) Output() string { return p.output.String() }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill stops the process at once (SIGKILL to its process group) and waits for it.
func (p *Process) Kill() {
	if p.Cmd.Process != nil {
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.done
}

// Start runs name with args in dir (the test's temp dir when ""), with env added to a minimal environment.
// The process group is killed when the test ends; if the test failed, the peer's output is logged.
func Start(t testing.TB, dir string, env []string, name string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(name, args...)
	if dir == "" {
		dir = t.TempDir()
	}
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "LANG=C.UTF-8"}, env...)
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Cmd: cmd, output: buf, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(name), p.Output())
		}
	})
	return p
}

// WaitDial blocks until network/addr accepts a connection, the process exits, or timeout passes; the
// latter two fail the test with the peer's output. Polling the socket is the readiness signal these
// servers offer.
func WaitDial(t testing.TB, p *Process, network, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if p != nil {
			select {
			case <-p.done:
				t.Fatalf("peer exited before listening on %s (%v):\n%s", addr, p.err, p.Output())
			default:
			}
		}
		if time.Now().After(deadline) {
			out := ""
			if p != nil {
				out = p.Output()
			}
			t.Fatalf("peer not listening on %s %s after %v: %v\n%s", network, addr, timeout, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ClosedPort returns a loopback TCP address nothing listens on, for as long as the test runs: a socket
// bound there but never listening, so a connection to it is refused, and the kernel cannot hand the port
// to a listener opened later (a closed listener's port can come back to the next 127.0.0.1:0, the
// gateway's own, and "refused" then reaches that instead).
func ClosedPort(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// FreePort returns a loopback TCP address that was free a moment ago, for peers that cannot be handed a
// listener. Prefer unix sockets where the peer supports them.
func FreePort(t testing.TB) string {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// FreePorts returns n distinct loopback TCP addresses that were free a moment ago. The listeners are held
// until all are chosen: addresses picked one at a time can come back equal, since the kernel may hand out
// a port it just freed again.
func FreePorts(t testing.TB, n int) []string {
	t.Helper()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs
}

// SocketPath returns a unix socket path in a fresh short directory (sun_path is limited to 108 bytes, and
// t.TempDir paths can be long).
func SocketPath(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

// Context returns a context cancelled when the test ends.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep memory bounded for chatty peers
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
