package load

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/internal/fastlane"
	"github.com/switchyard/switchyard/internal/testpeer"
)

// fastLane is GATEWAY_FAST_LANE for the gateways startGateway starts (unless a test sets it): TestMain runs
// the whole suite with the lane off, then again with it on, where the lane exists.
var fastLane bool

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && fastlane.Supported {
		fmt.Println("load: the suite again with GATEWAY_FAST_LANE=true")
		fastLane = true
		code = m.Run()
	}
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// needLoad skips the test under -short (the load tests take seconds and thousands of sockets).
func needLoad(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
}

// builtBinaries are the gateway and the apps' backend, built once per test binary.
type builtBinaries struct {
	dir, gateway, backend string
	err                   error
}

var (
	buildOnce sync.Once
	bins      builtBinaries
)

// binaries builds ./cmd/gateway and ./test/load/backend once per test binary, without -race (see the
// package doc).
func binaries(t *testing.T) *builtBinaries {
	t.Helper()
	buildOnce.Do(func() {
		if bins.dir, bins.err = os.MkdirTemp("", "switchyard-load"); bins.err != nil {
			return
		}
		bins.gateway, bins.backend = filepath.Join(bins.dir, "gateway"), filepath.Join(bins.dir, "backend")
		cmd := exec.Command("go", "build", "-o", bins.dir+string(filepath.Separator), "./cmd/gateway", "./test/load/backend")
		cmd.Dir = testpeer.RepoRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go build ./cmd/gateway ./test/load/backend: %v\n%s", err, out)
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return &bins
}

// fSetPipeSize is Linux's F_SETPIPE_SZ fcntl (not in package syscall).
const fSetPipeSize = 1031

// gatewayProc is a running gateway and what its JSON log said so far.
type gatewayProc struct {
	cmd   *exec.Cmd
	addr  string // main listener, host:port
	admin string // admin listener, host:port ("" when off)
	done  chan struct{}
	err   error // cmd.Wait's, once done is closed

	listening, adminUp, draining, stopped chan struct{}
	reloaded                              chan struct{} // a token per "configuration reloaded" line

	accessTotal atomic.Int64
	accessed    chan struct{} // a token after each access line
	mu          sync.Mutex
	statuses    map[int]int
	problems    []string // warning and error lines
}

// startGateway runs the built gateway with env (plus a JSON log, loopback listeners on free ports, a 60s
// header timeout and connection caps at 4000), waits for its "gateway listening" line, and kills it when
// the test ends.
func startGateway(t *testing.T, env ...string) *gatewayProc {
	t.Helper()
	full := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"GATEWAY_ADDR=127.0.0.1:0", "GATEWAY_ADMIN_ADDR=127.0.0.1:0", "GATEWAY_LOG_FORMAT=json",
		// Generous: go test runs packages in parallel, and on a starved machine a gateway can take seconds
		// to read a header that is already there. The tests assert behaviour, not speed.
		"GATEWAY_READ_HEADER_TIMEOUT=60s"}
	// The connection caps: above the load (2,100 connections from one address), and low enough that twice
	// the cap stays under the file limit (20,000 here), or the gateway warns.
	full = append(full, "GATEWAY_MAX_CONNS=4000", "GATEWAY_MAX_CONNS_PER_CLIENT=4000",
		"GATEWAY_FAST_LANE="+strconv.FormatBool(fastLane))
	full = append(full, env...)
	g := &gatewayProc{
		cmd:  exec.Command(binaries(t).gateway),
		done: make(chan struct{}), listening: make(chan struct{}), adminUp: make(chan struct{}),
		draining: make(chan struct{}), stopped: make(chan struct{}), reloaded: make(chan struct{}, 64),
		accessed: make(chan struct{}, 1), statuses: map[int]int{},
	}
	g.cmd.Env = full
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// The log pipe gets the largest buffer an unprivileged process may ask for (1 MiB by default, some
	// 3,000 access lines), so that the gateway never waits on this process's reader for long.
	stderr, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if limit, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(limit))); err == nil {
			syscall.Syscall(syscall.SYS_FCNTL, w.Fd(), fSetPipeSize, uintptr(n))
		}
	}
	g.cmd.Stderr = w
	var raw syncBuf // non-JSON output, for the failure message
	err = g.cmd.Start()
	w.Close()
	if err != nil {
		stderr.Close()
		t.Fatal(err)
	}
	go func() {
		g.readLog(stderr, &raw)
		stderr.Close()
		g.err = g.cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		<-g.done
		if t.Failed() && raw.String() != "" {
			t.Logf("gateway non-JSON output:\n%s", raw.String())
		}
	})
	select {
	case <-g.listening:
	case <-g.done:
		t.Fatalf("gateway exited before listening (%v):\n%s\n%s", g.err, raw.String(), strings.Join(g.Problems(), "\n"))
	case <-time.After(30 * time.Second):
		t.Fatal("gateway not listening after 30s")
	}
	if slices.Contains(env, "GATEWAY_ADMIN_ADDR=") {
		return g
	}
	select {
	case <-g.adminUp:
	case <-time.After(10 * time.Second):
		t.Fatal("gateway's admin listener not up after 10s")
	}
	return g
}

// readLog follows the gateway's JSON log until it ends: addresses, lifecycle lines, access lines (counted
// by status), and every warning or error line (kept: a load test allows none).
func (g *gatewayProc) readLog(r io.Reader, raw *syncBuf) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	accessMsg, statusKey := []byte(`"msg":"request",`), []byte(`"status":`)
	for sc.Scan() {
		// Access lines (thousands a second) take the fast path: no JSON decoding, only the status.
		if line := sc.Bytes(); bytes.Contains(line, accessMsg) && bytes.Contains(line, []byte(`"level":"INFO"`)) {
			if i := bytes.Index(line, statusKey); i >= 0 {
				rest := line[i+len(statusKey):]
				if j := bytes.IndexByte(rest, ','); j >= 0 {
					status, _ := strconv.Atoi(string(rest[:j]))
					g.mu.Lock()
					g.statuses[status]++
					g.mu.Unlock()
					g.accessTotal.Add(1)
					select {
					case g.accessed <- struct{}{}:
					default:
					}
					continue
				}
			}
		}
		var rec struct {
			Level  string `json:"level"`
			Msg    string `json:"msg"`
			Addr   string `json:"addr"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			raw.Write(append(sc.Bytes(), '\n'))
			continue
		}
		if rec.Level == "WARN" || rec.Level == "ERROR" {
			g.mu.Lock()
			if len(g.problems) < 50 {
				g.problems = append(g.problems, sc.Text())
			}
			g.mu.Unlock()
		}
		switch rec.Msg {
		case "request":
			g.mu.Lock()
			g.statuses[rec.Status]++
			g.mu.Unlock()
			g.accessTotal.Add(1)
			select {
			case g.accessed <- struct{}{}:
			default:
			}
		case "gateway listening":
			g.addr = rec.Addr
			closeOnce(g.listening)
		case "admin listening":
			g.admin = rec.Addr
			closeOnce(g.adminUp)
		case "listener closed; draining requests in flight":
			closeOnce(g.draining)
		case "stopped":
			closeOnce(g.stopped)
		case "configuration reloaded":
			select {
			case g.reloaded <- struct{}{}:
			default:
			}
		}
	}
	io.Copy(io.Discard, r)
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// Problems returns the warning and error lines logged so far.
func (g *gatewayProc) Problems() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.problems)
}

// Statuses returns the access log's count of requests per status.
func (g *gatewayProc) Statuses() map[int]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[int]int{}
	for k, v := range g.statuses {
		out[k] = v
	}
	return out
}

// waitAccess waits until the gateway logged n access lines (the line is written once the request is
// done), or fails after bound.
func (g *gatewayProc) waitAccess(t *testing.T, n int64, bound time.Duration) {
	t.Helper()
	deadline := time.After(bound)
	for g.accessTotal.Load() < n {
		select {
		case <-g.accessed:
		case <-g.done:
			if g.accessTotal.Load() < n {
				t.Fatalf("gateway exited after logging %d of %d requests", g.accessTotal.Load(), n)
			}
		case <-deadline:
			t.Fatalf("gateway logged %d of %d requests after %v", g.accessTotal.Load(), n, bound)
		}
	}
}

// reload sends SIGHUP and waits for the "configuration reloaded" line.
func (g *gatewayProc) reload(t *testing.T) {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.reloaded:
	case <-g.done:
		t.Fatalf("gateway exited (%v) on SIGHUP", g.err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no \"configuration reloaded\" line 30s after SIGHUP; warnings and errors: %v", g.Problems())
	}
}

// rss returns the gateway process's resident set size in bytes (VmRSS of /proc/PID/status).
func (g *gatewayProc) rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// metrics reads the named gauges from the admin /metrics.
func (g *gatewayProc) metrics(t *testing.T, c *http.Client, names ...string) map[string]float64 {
	t.Helper()
	resp, err := c.Get("http://" + g.admin + "/metrics")
	if err != nil {
		t.Fatalf("admin /metrics: %v", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && slices.Contains(names, name) {
			if v, err := strconv.ParseFloat(value, 64); err == nil {
				out[name] = v
			}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			t.Fatalf("admin /metrics has no %s", n)
		}
	}
	return out
}

// mib formats a byte count.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// cpuTime returns the user+system CPU time a process used so far (/proc/PID/stat).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
