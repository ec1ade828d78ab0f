package procs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Instance states, as the admin API shows them.
const (
	StateStarting = "starting" // started, not yet accepting (first start, or after a crash)
	StateRunning  = "running"  // accepted a connection
	StateBackoff  = "backoff"  // exited; waiting before the next start
	StateFailed   = "failed"   // exited too often in a row: no more restarts until the app is restarted
	StateStopped  = "stopped"
	StateIdle     = "idle" // an on-demand app not started, or stopped after its idle timeout
)

// tailLines is how many output lines an instance keeps for the error of a failed start.
const tailLines = 12

// maxLine bounds one logged output line; the rest of a longer line is dropped (and said so), so an app
// printing without newlines cannot grow the gateway's memory.
const maxLine = 16 << 10

// instance is one process of an app, supervised: started, restarted when it exits, stopped.
type instance struct {
	app   *Group
	index int
	addr  Addr
	argv  []string
	env   []string

	stopping chan struct{} // closed by stop
	done     chan struct{} // closed when supervise returned (nothing runs)

	mu          sync.Mutex
	state       string
	pid         int
	since       time.Time // start of the current process
	restarts    int
	lastExit    string
	tail        []string
	everReady   bool
	readyOnce   sync.Once
	readyResult chan error // first start's outcome: nil once it accepts, or why it could not
}

// Status is one instance as the admin API lists it.
type Status struct {
	App      string    `json:"app"`
	Instance int       `json:"instance"`
	Address  string    `json:"address"`
	State    string    `json:"state"`
	PID      int       `json:"pid,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	Uptime   string    `json:"uptime,omitempty"`
	Restarts int       `json:"restarts"`
	LastExit string    `json:"last_exit,omitempty"`
}

func (in *instance) status() Status {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := Status{App: in.app.spec.Name, Instance: in.index, Address: in.addr.Address, State: in.state, Restarts: in.restarts, LastExit: in.lastExit}
	if in.pid != 0 {
		s.PID, s.Since = in.pid, in.since
		s.Uptime = time.Since(in.since).Truncate(time.Second).String()
	}
	return s
}

func (in *instance) setState(s string) {
	in.mu.Lock()
	in.state = s
	in.mu.Unlock()
}

func (in *instance) logger() *slog.Logger {
	return in.app.m.logger.With("app", in.app.spec.Name, "instance", in.index)
}

// start launches the process: its own process group, its own environment, output into the log.
func (in *instance) start() (*exec.Cmd, <-chan struct{}, error) {
	if in.addr.Network == "unix" {
		os.Remove(in.addr.Address) // a socket left by a crashed process would make the new one fail to bind
	}
	// Not exec.Command: the program was looked up once (relative to the app's directory when it has a
	// slash), and the argv keeps argv[0] as written.
	cmd := &exec.Cmd{Path: in.app.path, Args: in.argv}
	cmd.Dir = in.app.spec.Dir
	cmd.Env = in.env
	cmd.SysProcAttr = sysProcAttr()
	cmd.SysProcAttr.Credential = in.app.cred
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, nil, err
	}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close() // the child holds its copies; the readers see EOF once every holder closed them
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, nil, err
	}
	// The readers run until the pipes close, which may be after the process exits (a worker it left
	// behind still holds them): the process's exit is watched by Wait, not by the readers.
	var wg sync.WaitGroup
	wg.Add(2)
	pid := cmd.Process.Pid
	go func() { defer wg.Done(); in.copyLines(outR, "stdout", pid) }()
	go func() { defer wg.Done(); in.copyLines(errR, "stderr", pid) }()
	output := make(chan struct{})
	go func() { wg.Wait(); close(output) }()
	return cmd, output, nil
}

// copyLines logs every line read from r, tagged with the app, instance, pid and stream, and keeps the
// last ones for the error of a failed start. It reads until EOF whatever happens, so the app never blocks
// on a full pipe.
func (in *instance) copyLines(r *os.File, stream string, pid int) {
	defer r.Close()
	log := in.logger().With("pid", pid, "stream", stream)
	br := bufio.NewReaderSize(r, maxLine)
	skipping := false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			full := errors.Is(err, bufio.ErrBufferFull)
			if !skipping {
				line := strings.TrimRight(string(chunk), "\r\n")
				if full {
					log.Info(line, "truncated", true)
				} else {
					log.Info(line)
				}
				in.remember(line)
			}
			skipping = full
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (in *instance) remember(line string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.tail) == tailLines {
		copy(in.tail, in.tail[1:])
		in.tail = in.tail[:tailLines-1]
	}
	in.tail = append(in.tail, line)
}

func (in *instance) tailText() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.tail) == 0 {
		return "it printed nothing"
	}
	return "its last output: " + strings.Join(in.tail, " | ")
}

// supervise runs the instance until stop: start, wait until it accepts, wait for its exit, back off,
// start again. The first start's outcome goes to readyResult; when that start fails nothing is restarted
// (the configuration that asked for it is refused instead).
func (in *instance) supervise() {
	defer close(in.done)
	defer in.setState(StateStopped)
	m := in.app.m
	backoff := m.backoffMin
	failures := 0
	for {
		in.setState(StateStarting)
		cmd, output, err := in.start()
		if err != nil {
			err = fmt.Errorf("cannot start %s: %v", in.app.spec, err)
			if !in.reportReady(err) {
				in.logger().Error("run app: cannot start an instance", "cause", err)
			}
			return
		}
		started := time.Now()
		in.mu.Lock()
		in.pid, in.since = cmd.Process.Pid, started
		in.mu.Unlock()
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()

		waitErr, stopped := in.watch(cmd, exited)
		killGroup(cmd.Process.Pid) // workers the process left behind go with it: no orphan
		// The last lines are logged before the exit line; a process that left its group (setsid) and
		// still holds the pipes is not waited for long.
		select {
		case <-output:
		case <-time.After(time.Second):
		}
		status := exitText(waitErr)
		in.mu.Lock()
		in.pid, in.lastExit = 0, status
		in.mu.Unlock()
		if stopped {
			return
		}
		if in.reportReady(fmt.Errorf("%s exited before it was ready on %s: %s; %s", in.app.spec, in.addr.Address, status, in.tailText())) {
			return // a first start that failed is refused, not retried
		}
		// A crash after the first start: restart, with backoff, unless it keeps crashing.
		if time.Since(started) >= m.stableAfter {
			failures, backoff = 0, m.backoffMin
		}
		failures++
		if failures > m.crashLimit {
			in.setState(StateFailed)
			in.logger().Error("run app instance keeps exiting; no more restarts until the app is restarted (reload with a change, or POST /api/processes/restart)",
				"exit", status, "failures", failures-1)
			<-in.stopping
			return
		}
		in.setState(StateBackoff)
		in.logger().Warn("run app instance exited; restarting", "exit", status, "uptime", time.Since(started).Truncate(time.Millisecond), "restart_in", backoff)
		select {
		case <-in.stopping:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, m.backoffMax)
		in.mu.Lock()
		in.restarts++
		in.mu.Unlock()
		m.onRestart(in.app.spec.Name)
	}
}

// watch waits for the process to accept a connection (reported as ready), to exit, or for stop (then it
// stops the process). It returns the exit and whether the instance was stopped.
func (in *instance) watch(cmd *exec.Cmd, exited <-chan error) (error, bool) {
	m := in.app.m
	deadline := time.NewTimer(in.app.spec.startTimeout())
	defer deadline.Stop()
	poll := time.NewTicker(m.pollEvery)
	defer poll.Stop()
	// A probe can take a while (an HTTP app answers once a worker has loaded the app): it runs beside
	// the loop, which keeps watching for the exit, the stop and the deadline.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	probed := make(chan bool, 1)
	probing, accepting := false, false
	what := "accept connections"
	if in.app.spec.ProbePath != "" {
		what = "answer GET " + in.app.spec.ProbePath
	}
	for {
		select {
		case err := <-exited:
			return err, false
		case <-in.stopping:
			return in.terminate(cmd, exited), true
		case <-deadline.C:
			if !accepting {
				err := fmt.Errorf("%s did not %s on %s within %s (start timeout); %s", in.app.spec, what, in.addr.Address, in.app.spec.startTimeout(), in.tailText())
				if in.reportReady(err) {
					return in.terminate(cmd, exited), true
				}
				in.logger().Warn("run app instance not ready after a restart", "addr", in.addr.Address, "waited", in.app.spec.startTimeout(), "check", what)
			}
		case <-poll.C:
			if accepting || probing {
				continue
			}
			probing = true
			go func() { probed <- probe(ctx, in.addr, in.app.spec.ProbePath) }()
		case ok := <-probed:
			probing = false
			if !ok || accepting {
				continue
			}
			accepting = true
			poll.Stop()
			in.mu.Lock()
			again := in.everReady
			in.everReady = true
			in.mu.Unlock()
			if again {
				// A restart: the apps take it back at once (before it shows as running, so whoever sees
				// it running finds it in service).
				m.onServing(in.app.spec.Name, in.addr.Address)
			}
			in.setState(StateRunning)
			in.reportReady(nil)
		}
	}
}

// probe reports whether the instance at a is ready: it accepts a connection, and with path, answers an
// HTTP/1.1 GET of path with a complete response head (any status: the app server runs the app, whatever
// the app says about the path).
func probe(ctx context.Context, a Addr, path string) bool {
	if path == "" {
		return dialOK(a)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, a.Network, a.Address)
	if err != nil {
		return false
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: switchyard-start-probe\r\nConnection: close\r\n\r\n", path); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// reportReady delivers the first start's outcome; it reports whether this call delivered it.
func (in *instance) reportReady(err error) bool {
	delivered := false
	in.readyOnce.Do(func() {
		in.readyResult <- err
		delivered = true
	})
	return delivered
}

func dialOK(a Addr) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, a.Network, a.Address)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// terminate sends SIGTERM to the process group, and SIGKILL when the stop timeout passes first.
func (in *instance) terminate(cmd *exec.Cmd, exited <-chan error) error {
	pid := cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	t := time.NewTimer(in.app.spec.stopTimeout())
	defer t.Stop()
	select {
	case err := <-exited:
		return err
	case <-t.C:
		in.logger().Warn("run app instance did not exit after SIGTERM; sending SIGKILL", "pid", pid, "stop_timeout", in.app.spec.stopTimeout())
		syscall.Kill(-pid, syscall.SIGKILL)
		return <-exited
	}
}

// killGroup kills what is left of a process group whose leader exited.
func killGroup(pgid int) {
	if pgid > 0 {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// exitText says how a process ended: "exit status 3", "signal: killed".
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}
