package procs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Options configure a Manager. The zero value is usable.
type Options struct {
	// Logger receives the instances' output and the supervision lines (slog.Default() when nil).
	Logger *slog.Logger
	// RuntimeDir holds the instances' unix sockets. "" creates a private directory (mode 0700) under
	// os.TempDir, removed by Shutdown.
	RuntimeDir string
	// LookupEnv reads the gateway's environment for the variables a Spec inherits (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
	// OnRestart, when not nil, is called each time an instance is restarted after it exited; OnServing
	// each time such an instance is ready again, with its address (Addr.Address).
	OnRestart func(app string)
	OnServing func(app, address string)
}

// Manager runs the apps of successive configurations. Prepare starts what a configuration needs and
// returns a Plan; the Plan's Commit makes it current and returns the release function the gateway built
// on it calls when it is retired. A group of instances no longer current is stopped once every gateway
// using it was released: requests in flight on a replaced configuration finish on the old instances.
// Prepare calls must not overlap (the gateway's reloads run one at a time); everything else is safe for
// concurrent use.
type Manager struct {
	logger    *slog.Logger
	dir       string
	ownDir    bool
	lookupEnv func(string) (string, bool)
	onRestart func(string)
	onServing func(app, address string)

	// Supervision timing; tests shorten them.
	backoffMin, backoffMax time.Duration
	stableAfter            time.Duration // an instance up this long has its crash count reset
	crashLimit             int           // consecutive quick exits before an instance is given up
	pollEvery              time.Duration // how often a starting instance is dialled

	mu      sync.Mutex
	seq     int
	current map[string]*Group
	live    map[*Group]bool // groups started and not yet stopped
	closed  bool
}

// NewManager returns a Manager; it creates the private runtime directory when Options.RuntimeDir is "".
func NewManager(o Options) (*Manager, error) {
	m := &Manager{logger: o.Logger, dir: o.RuntimeDir, lookupEnv: o.LookupEnv, onRestart: o.OnRestart, onServing: o.OnServing,
		backoffMin: 100 * time.Millisecond, backoffMax: 10 * time.Second, stableAfter: 30 * time.Second, crashLimit: 5,
		pollEvery: 20 * time.Millisecond, current: map[string]*Group{}, live: map[*Group]bool{}}
	if m.logger == nil {
		m.logger = slog.Default()
	}
	if m.lookupEnv == nil {
		m.lookupEnv = os.LookupEnv
	}
	if m.onServing == nil {
		m.onServing = func(string, string) {}
	}
	if m.onRestart == nil {
		m.onRestart = func(string) {}
	}
	if m.dir == "" {
		d, err := os.MkdirTemp("", "switchyard-run-")
		if err != nil {
			return nil, fmt.Errorf("run apps: creating the runtime directory for their sockets: %v", err)
		}
		m.dir, m.ownDir = d, true
	} else if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("run apps: runtime directory %s: %v", m.dir, err)
	}
	return m, nil
}

// RuntimeDir is the directory of the instances' unix sockets.
func (m *Manager) RuntimeDir() string { return m.dir }

// Plan is what one configuration runs: a group per app, some kept from the running configuration, some
// started for it.
type Plan struct {
	m       *Manager
	use     map[string]*Group
	started []*Group
	done    bool
}

// Addrs are the addresses of the named app's instances (nil for a name the plan does not run).
func (p *Plan) Addrs(name string) []Addr {
	if g := p.use[name]; g != nil {
		return g.Addrs()
	}
	return nil
}

// Use is what a request to the named app does first: for an on-demand app, start it unless it runs (the
// request waits until it accepts, as long as ctx allows) and count the request, so the app is not
// stopped as idle under it; for any other, check that an instance accepts connections. The error says
// why the app cannot take the request. release must be called when the request is done.
func (p *Plan) Use(ctx context.Context, name string) (release func(), err error) {
	g := p.use[name]
	if g == nil {
		return nil, fmt.Errorf("run app %q is not run by this configuration", name)
	}
	return g.use(ctx)
}

// Admit is Use for a caller that cannot wait (the fast lane's event loops): it admits a request only
// when the named app takes it at once, an instance accepting connections (for an on-demand app, one
// already started), and counts it as Use does; release must then be called when the request is done.
// false leaves the request to Use, which starts an on-demand app or says why the app cannot take it.
func (p *Plan) Admit(name string) (release func(), ok bool) {
	g := p.use[name]
	if g == nil {
		return nil, false
	}
	return g.admit()
}

// Started names the apps this plan started (new, changed or restarted), sorted.
func (p *Plan) Started() []string {
	var out []string
	for _, g := range p.started {
		out = append(out, g.spec.Name)
	}
	sort.Strings(out)
	return out
}

// Prepare starts what specs need and is not running: a new app, or one whose Spec.Key changed or that
// restart names. Each new group's instances must accept connections within the app's start timeout;
// when one cannot, everything Prepare started is stopped and the error names the app, the command and
// why (the exit status and the last lines it printed, or the timeout). Groups already running are kept
// and shared with the running configuration.
func (m *Manager) Prepare(ctx context.Context, specs []Spec, restart map[string]bool) (*Plan, error) {
	p := &Plan{m: m, use: map[string]*Group{}}
	var errs []error
	seen := map[string]bool{}
	for _, s := range specs {
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("%s: run app %q is declared twice", s.Source, s.Name))
		}
		seen[s.Name] = true
		errs = append(errs, s.Validate()...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("run apps: the gateway is shutting down")
	}
	var toStart []Spec
	for _, s := range specs {
		if g := m.current[s.Name]; g != nil && g.spec.Key() == s.Key() && !restart[s.Name] && !g.failed() {
			p.use[s.Name] = g
			continue
		}
		toStart = append(toStart, s)
	}
	// A fixed port cannot be listened on twice: what holds it (the app's running instances, or an app
	// renamed since) is stopped before the new instances start. Requests meanwhile get 503 or 502;
	// only allocated addresses give a restart without downtime.
	var holders []*Group
	for _, s := range toStart {
		if s.Port == 0 {
			continue
		}
		for name, g := range m.current {
			for _, a := range g.addrs {
				if a.Network == "tcp" && a.Port() == strconv.Itoa(s.Port) {
					holders = append(holders, g)
					delete(m.current, name) // stopped: never reused, even if the start below fails
					g.current = false
				}
			}
		}
	}
	m.mu.Unlock()
	for _, g := range holders {
		m.logger.Warn("run app on a fixed port: stopping its instances before starting the new ones; requests meanwhile fail", "app", g.spec.Name, "port", g.addrs[0].Port())
		g.stop()
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, s := range toStart {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := m.start(ctx, s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			p.use[s.Name] = g
			p.started = append(p.started, g)
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		p.Abort()
		sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// start starts one group: an on-demand one only gets its addresses; any other is launched, and start
// waits until every instance accepts.
func (m *Manager) start(ctx context.Context, s Spec) (*Group, error) {
	path, err := lookPath(s.Command[0], s.Dir)
	if err != nil {
		return nil, fmt.Errorf("%s: run app %q: %v", s.Source, s.Name, err)
	}
	cred, err := s.credential()
	if err != nil {
		return nil, fmt.Errorf("%s: run app %q: %v", s.Source, s.Name, err)
	}
	s = s.clone() // the group keeps what it started with, whatever the caller does with its maps
	m.mu.Lock()
	m.seq++
	g := &Group{m: m, spec: s, path: path, seq: m.seq, cred: cred, quit: make(chan struct{})}
	m.live[g] = true
	m.mu.Unlock()
	g.addrs = make([]Addr, s.instances())
	for i := range g.addrs {
		if g.addrs[i], err = m.allocate(s, cred, g.seq, i); err != nil {
			g.stop() // nothing started yet
			return nil, fmt.Errorf("%s: run app %q: %v", s.Source, s.Name, err)
		}
	}
	if s.OnDemand {
		go g.idleLoop()
		m.logger.Info("run app ready to start on its first request", "app", s.Name, "command", s.String(), "instances", len(g.addrs), "addrs", addrList(g.addrs), "idle_timeout", s.idleTimeout())
		return g, nil
	}
	if err := g.activate(ctx); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

func addrList(as []Addr) string {
	s := ""
	for i, a := range as {
		if i > 0 {
			s += " "
		}
		s += a.Address
	}
	return s
}

// maxSocketPath is the longest unix socket path every unix system takes (sun_path is 104 bytes on the
// BSDs and macOS, 108 on Linux, both with the terminating NUL).
const maxSocketPath = 103

// allocate picks an instance's address: a socket path in the runtime directory, unique per group so a
// replacement can listen while the old group still serves, or a free loopback port.
//
// An app run as another user gets its sockets in a directory of its own below the runtime directory,
// owned by that user (mode 0700): it could not create them in the gateway's, and no other app's user can
// reach them. The runtime directory is then made traversable (0711), never listable.
func (m *Manager) allocate(s Spec, cred *syscall.Credential, seq, i int) (Addr, error) {
	if s.Port != 0 {
		return Addr{Network: "tcp", Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))}, nil
	}
	if s.network() == "unix" {
		dir := m.dir
		if cred != nil {
			dir = filepath.Join(m.dir, s.Name)
			if err := os.Chmod(m.dir, 0o711); err != nil {
				return Addr{}, err
			}
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return Addr{}, err
			}
			if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
				return Addr{}, err
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("%s.%d.%d.sock", s.Name, seq, i))
		if len(p) > maxSocketPath {
			return Addr{}, fmt.Errorf("socket path %s is longer than the %d bytes a unix socket address holds: use a shorter app name or runtime directory", p, maxSocketPath)
		}
		return Addr{Network: "unix", Address: p}, nil
	}
	// The port is free now; the app binds it a moment later. Another process could take it in between:
	// the start then fails with the app's "address in use", and the next reload picks another.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Addr{}, fmt.Errorf("allocating a loopback port: %v", err)
	}
	defer ln.Close()
	return Addr{Network: "tcp", Address: ln.Addr().String()}, nil
}

// environ is an instance's whole environment: the inherited variables, the app's own (placeholders
// expanded), and the address variables, which nothing else may set.
func (m *Manager) environ(s Spec, a Addr, i int) []string {
	vars := map[string]string{}
	for _, k := range s.Inherit {
		if v, ok := m.lookupEnv(k); ok {
			vars[k] = v
		}
	}
	for k, v := range s.Env {
		vars[k] = Expand(v, a, i)
	}
	if a.Network == "unix" {
		vars["SOCKET"] = a.Address
	} else {
		vars["PORT"], vars["HOST"] = a.Port(), "127.0.0.1"
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// Commit makes the plan the current configuration's apps and returns release, which the gateway built on
// the plan calls once it has finished its last request (it may be called more than once). Groups the plan
// replaced are stopped once no gateway still uses them.
func (p *Plan) Commit() (release func()) {
	m := p.m
	m.mu.Lock()
	inUse := map[*Group]bool{}
	for _, g := range p.use {
		inUse[g] = true
	}
	var stop []*Group
	for name, g := range m.current {
		if !inUse[g] {
			g.current = false
			delete(m.current, name)
			if g.refs == 0 {
				stop = append(stop, g)
			}
		}
	}
	for name, g := range p.use {
		g.current = true
		g.refs++
		m.current[name] = g
	}
	p.done = true
	m.mu.Unlock()
	for _, g := range stop {
		go m.retire(g)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			var stop []*Group
			for _, g := range p.use {
				g.refs--
				if g.refs == 0 && !g.current {
					stop = append(stop, g)
				}
			}
			m.mu.Unlock()
			for _, g := range stop {
				go m.retire(g)
			}
		})
	}
}

func (m *Manager) retire(g *Group) {
	m.logger.Info("run app: stopping replaced instances", "app", g.spec.Name, "addrs", addrList(g.Addrs()))
	g.stop()
	m.logger.Info("run app: replaced instances stopped", "app", g.spec.Name, "addrs", addrList(g.Addrs()))
}

// Abort stops what the plan started, when the configuration it was prepared for is not used.
func (p *Plan) Abort() {
	if p.done {
		return
	}
	p.done = true
	var wg sync.WaitGroup
	for _, g := range p.started {
		wg.Add(1)
		go func() { defer wg.Done(); g.stop() }()
	}
	wg.Wait()
}

// Shutdown stops every instance of every group (SIGTERM to each process group, SIGKILL after the app's
// stop timeout), waits for them, and removes a private runtime directory. Prepare fails afterwards.
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.closed = true
	groups := make([]*Group, 0, len(m.live))
	for g := range m.live {
		groups = append(groups, g)
	}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() { defer wg.Done(); g.stop() }()
	}
	wg.Wait()
	if m.ownDir {
		os.RemoveAll(m.dir)
	}
}

// Status lists every instance of the current apps, by app name then instance.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	groups := make([]*Group, 0, len(m.current))
	for _, g := range m.current {
		groups = append(groups, g)
	}
	m.mu.Unlock()
	sort.Slice(groups, func(i, j int) bool { return groups[i].spec.Name < groups[j].spec.Name })
	var out []Status
	for _, g := range groups {
		out = append(out, g.status()...)
	}
	return out
}
