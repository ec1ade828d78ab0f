package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/procs"
	"github.com/switchyard/switchyard/router"
)

// runner connects the configuration's run apps (config.RunApp) to package procs: before each build it
// starts what the configuration needs (new apps, changed ones, those asked to restart) and writes their
// addresses into the app URLs; the built gateway releases the processes it used when it is retired, so an
// app replaced by a reload or a restart keeps serving the requests in flight on the old configuration and
// is stopped after them. A nil *runner (gateway check) starts nothing and writes placeholder addresses.
type runner struct {
	logger   *slog.Logger
	restarts *prometheus.CounterVec

	mu      sync.Mutex
	m       *procs.Manager // created when the first configuration with run apps is built
	pending map[string]bool
	// restart asks the gateway.Reloader to rebuild the running configuration with the named apps (all
	// when nil) started afresh; set once the Reloader exists (restartRunApps).
	restart func(trigger string, apps []string) error
	// current is the gateway built last on run apps: told when a restarted instance serves again.
	current *gateway.Gateway
}

func newRunner(logger *slog.Logger, reg prometheus.Registerer) *runner {
	r := &runner{logger: logger, restarts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "switchyard_run_app_restarts_total",
		Help: "Instances of run apps the gateway started again after they exited, by app."}, []string{"app"})}
	if reg != nil {
		reg.MustRegister(r.restarts, &runCollector{r: r})
	}
	return r
}

// prepare runs before gateway.Build: it returns the configuration with the run apps' addresses written
// in, the route middleware that answers 503 while a route's run app has no live instance, and done, to
// call with the build's outcome (the gateway, or nil when the build failed).
func (r *runner) prepare(cfg config.Config) (config.Config, map[string]gateway.RouteGuard, func(*gateway.Gateway), error) {
	specs := cfg.RunSpecs()
	if r == nil {
		// gateway check: what can be checked without starting anything (the programs, the directories);
		// the configuration comes back with addresses filled in, so the build reports its problems too.
		return cfg.WithRunAddrs(checkAddrs(specs)), nil, func(*gateway.Gateway) {}, errors.Join(validateSpecs(specs)...)
	}
	r.mu.Lock()
	if r.m == nil && len(specs) == 0 {
		r.mu.Unlock()
		return cfg, nil, func(*gateway.Gateway) {}, nil
	}
	if r.m == nil {
		m, err := procs.NewManager(procs.Options{Logger: r.logger, OnRestart: func(app string) { r.restarts.WithLabelValues(app).Inc() },
			OnServing: r.serving})
		if err != nil {
			r.mu.Unlock()
			return cfg, nil, nil, err
		}
		r.m = m
	}
	m, pending := r.m, r.pending
	r.pending = nil
	r.mu.Unlock()
	if pending != nil && pending["*"] {
		pending = map[string]bool{}
		for _, s := range specs {
			pending[s.Name] = true
		}
	}
	plan, err := m.Prepare(context.Background(), specs, pending)
	if err != nil {
		return cfg, nil, nil, err
	}
	if started := plan.Started(); len(started) > 0 {
		r.logger.Info("run apps ready", "started", strings.Join(started, " "))
	}
	return cfg.WithRunAddrs(plan.Addrs), r.guards(cfg, plan), func(g *gateway.Gateway) {
		if g == nil {
			plan.Abort()
			return
		}
		g.OnClose(plan.Commit())
		r.mu.Lock()
		r.current = g
		r.mu.Unlock()
		g.Admin["/api/processes"] = http.HandlerFunc(r.serveStatus)
		g.Admin["/api/processes/restart"] = http.HandlerFunc(r.serveRestart)
	}, nil
}

// serving puts an instance of a run app that was restarted and is ready back in service in the current
// gateway's apps at once (gateway.Revive): its crash may have had it ejected until fail_timeout.
func (r *runner) serving(app, address string) {
	r.mu.Lock()
	g := r.current
	r.mu.Unlock()
	if g != nil {
		g.Revive(address)
	}
}

// guards returns, for every route whose own app is a run app, a guard that starts an on-demand app on
// the request that needs it (the request waits until it accepts) and counts the requests it serves (so
// it is not stopped as idle under them), and answers 503 (Retry-After: 1) while none of the app's
// instances in plan accepts connections (crashed, backing off, given up, failed to start), with a log
// line saying why, at most one a second per app. Its Admit (procs.Plan.Admit) lets the fast lane serve
// the requests the app takes at once. Routes whose migration stage or cascade lets another app answer
// are left alone.
func (r *runner) guards(cfg config.Config, plan *procs.Plan) map[string]gateway.RouteGuard {
	out := map[string]gateway.RouteGuard{}
	for _, rt := range cfg.Routes {
		name, _, ok := config.AppRun(rt.App)
		if !ok {
			continue
		}
		if config.SharesItsRoute(rt.App) {
			continue
		}
		p, err := router.ParsePattern(rt.Pattern)
		if err != nil {
			continue // the build reports it
		}
		var last atomic.Int64
		admit := func() (func(), bool) { return plan.Admit(name) }
		out[p.String()] = gateway.RouteGuard{Admit: admit, Middleware: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				release, err := plan.Use(req.Context(), name)
				if err == nil {
					defer release()
					next.ServeHTTP(w, req)
					return
				}
				if now := time.Now().Unix(); last.Swap(now) != now {
					r.logger.Warn("run app cannot take the request; answering 503", "app", name, "route", p.String(), "why", err.Error())
				}
				w.Header().Set("Retry-After", "1")
				http.Error(w, "503 service unavailable: the app is not running (restarting, or failed to start; the gateway log says why)", http.StatusServiceUnavailable)
			})
		}}
	}
	return out
}

// validateSpecs is what can be checked of the run apps' specs without starting anything: the programs,
// the directories, the users (an app without a command is the configuration's check's to report).
func validateSpecs(specs []procs.Spec) []error {
	var errs []error
	for _, s := range specs {
		if len(s.Command) > 0 {
			errs = append(errs, s.Validate()...)
		}
	}
	return errs
}

// checkAddrs gives `gateway check` addresses of the shape the apps will get, without allocating any.
func checkAddrs(specs []procs.Spec) func(string) []procs.Addr {
	byName := map[string]procs.Spec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	return func(name string) []procs.Addr {
		s, ok := byName[name]
		if !ok {
			return nil // (declared by an entry that could not be read: WithRunAddrs makes one up)
		}
		n := max(s.Instances, 1)
		if s.Port != 0 {
			n = 1 // (a fixed port with several instances is the spec's problem, reported once)
		}
		out := make([]procs.Addr, n)
		for i := range out {
			if s.Port != 0 {
				out[i] = procs.Addr{Network: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", s.Port)}
			} else if s.Network == "tcp" {
				out[i] = procs.Addr{Network: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", 1+i)}
			} else {
				// In a directory that exists: the socket-directory check would warn about a made-up one.
				out[i] = procs.Addr{Network: "unix", Address: filepath.Join(os.TempDir(), fmt.Sprintf("switchyard-run-CHECK.%s.1.%d.sock", name, i))}
			}
		}
		return out
	}
}

// requestRestart marks apps (all when apps is empty) to be started afresh by the next build.
func (r *runner) requestRestart(apps []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending == nil {
		r.pending = map[string]bool{}
	}
	if len(apps) == 0 {
		r.pending["*"] = true
	}
	for _, a := range apps {
		r.pending[a] = true
	}
}

// shutdown stops every run app (after the gateway's drain).
func (r *runner) shutdown() {
	r.mu.Lock()
	m := r.m
	r.mu.Unlock()
	if m != nil {
		r.logger.Info("stopping run apps")
		m.Shutdown()
		r.logger.Info("run apps stopped")
	}
}

func (r *runner) status() []procs.Status {
	r.mu.Lock()
	m := r.m
	r.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.Status()
}

// serveStatus is GET /api/processes: every instance of every run app.
func (r *runner) serveStatus(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	st := r.status()
	if st == nil {
		st = []procs.Status{}
	}
	admin.WriteJSON(w, st)
}

// serveRestart is POST /api/processes/restart[?app=NAME&app=...]: a zero-downtime restart of the named
// run apps (all without app), answered once the new instances serve.
func (r *runner) serveRestart(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "POST only: POST /api/processes/restart?app=NAME restarts an app without downtime", http.StatusMethodNotAllowed)
		return
	}
	apps := req.URL.Query()["app"]
	known := map[string]bool{}
	for _, s := range r.status() {
		known[s.App] = true
	}
	for _, a := range apps {
		if !known[a] {
			names := make([]string, 0, len(known))
			for k := range known {
				names = append(names, k)
			}
			sort.Strings(names)
			http.Error(w, fmt.Sprintf("no run app %q (running: %s)", a, strings.Join(names, ", ")), http.StatusNotFound)
			return
		}
	}
	if err := r.restart("admin API", apps); err != nil {
		http.Error(w, "restart failed; the running instances keep serving: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "restarted")
}

// restartRunApps rebuilds the running configuration with the named run apps (all when apps is empty)
// started afresh: new instances first, then the swap, then the old instances stop after their last
// request.
func restartRunApps(rl *gateway.Reloader, run *runner, logger *slog.Logger, trigger string, apps []string) error {
	seq, err := rl.Rebuild(func() { run.requestRestart(apps) })
	if err != nil {
		logger.Error("run app restart failed; the running instances keep serving", "trigger", trigger, "cause", err)
		return err
	}
	which := "all"
	if len(apps) > 0 {
		which = strings.Join(apps, " ")
	}
	logger.Info("run apps restarted", "trigger", trigger, "apps", which, "generation", seq)
	return nil
}

// runCollector publishes the instances' states: switchyard_run_app_instances{app, state}.
type runCollector struct{ r *runner }

var runInstancesDesc = prometheus.NewDesc("switchyard_run_app_instances", "Instances of run apps by state (starting, running, backoff, failed).", []string{"app", "state"}, nil)

func (c *runCollector) Describe(ch chan<- *prometheus.Desc) { ch <- runInstancesDesc }

func (c *runCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[[2]string]int{}
	for _, s := range c.r.status() {
		counts[[2]string{s.App, s.State}]++
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(runInstancesDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}

// printRunApps lists the run apps for `gateway check`: name, command, address, instances, directory.
func printRunApps(w io.Writer, cfg config.Config) {
	specs := cfg.RunSpecs()
	if len(specs) == 0 {
		return
	}
	fmt.Fprintln(w, "\nrun apps (started by the gateway before it is ready):")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCOMMAND\tADDRESS\tINSTANCES\tDIR\tFROM")
	for _, s := range specs {
		addr := "unix socket in a private runtime directory ($SOCKET, {socket})"
		if s.Network == "tcp" {
			addr = "loopback port ($PORT, {addr}, {port})"
		}
		if s.Port != 0 {
			addr = fmt.Sprintf("127.0.0.1:%d, fixed (a restart stops the old instance first)", s.Port)
		}
		dir := s.Dir
		if dir == "" {
			dir = "."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.String(), addr, max(s.Instances, 1), dir, s.Source)
	}
	tw.Flush()
}
