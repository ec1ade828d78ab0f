package load

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/test/load/internal/loadapp"
)

var (
	payload = loadapp.Payload
	echoed  = loadapp.Echoed
)

// backendProc is the apps' process (test/load/backend), with their URLs.
type backendProc struct {
	urls    map[string]string // role -> http://127.0.0.1:port
	control *http.Client
	pid     int
}

// startBackend opens the apps' listeners, starts the built backend on them (so nothing waits for a port:
// connections queue in the listeners' backlog until it serves), and stops it when the test ends.
func startBackend(t *testing.T) *backendProc {
	t.Helper()
	p := &backendProc{urls: map[string]string{}, control: &http.Client{Timeout: time.Minute}}
	var files []*os.File
	for _, role := range loadapp.Roles {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		ln.Close() // the duplicate in f stays open and listening
		files = append(files, f)
		p.urls[role] = "http://" + ln.Addr().String()
	}
	cmd := exec.Command(binaries(t).backend)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.ExtraFiles = files
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err := cmd.Start()
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		p.control.CloseIdleConnections()
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() && out.String() != "" {
			t.Logf("backend output:\n%s", out.String())
		}
	})
	return p
}

// app is the APP URL of the app in role, with a generous dial timeout: 2,000 dials at once on a machine
// starved by parallel test packages were seen to take over the default 5s (a 504 then), a matter of speed,
// which these tests do not assert.
func (p *backendProc) app(role string) string { return p.urls[role] + "?dial_timeout=30s" }

// call makes a control request and fails the test unless it answers 200.
func (p *backendProc) call(t *testing.T, method, path string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, p.urls["control"]+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.control.Do(req)
	if err != nil {
		t.Fatalf("backend control %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("backend control %s %s: %s %s", method, path, resp.Status, body)
	}
	return strings.TrimSpace(string(body))
}

// syncBuf collects a child's output (at most 1 MiB).
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() < 1<<20 {
		s.b.Write(p)
	}
	return len(p), nil
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
