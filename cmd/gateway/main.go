// Command gateway is the Switchyard binary: one port in front of several web applications, configured by
// GATEWAY_* environment variables and an optional YAML file (GATEWAY_CONFIG).
//
//	gateway           serve (the built-in demo when no application is configured)
//	gateway check     validate the configuration and print the route table, without serving
//	gateway report    print the migration report of a running gateway (its admin listener)
//	gateway init      write a commented YAML file that runs the named stacks' apps (django, flask, ...)
//	gateway version   print the version
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/admin"
	"github.com/switchyard/switchyard/autotls"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/connlimit"
	"github.com/switchyard/switchyard/internal/demo"
	"github.com/switchyard/switchyard/internal/suggest"
	"github.com/switchyard/switchyard/metrics"
	"github.com/switchyard/switchyard/tracing"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(args []string, environ []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve":
	case "check":
	case "report":
		return report(environ, stdout, stderr)
	case "init":
		return runInit(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "gateway", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "gateway: unknown command %q%s\n", cmd, didYouMean(cmd))
		usage(stderr)
		return 2
	}

	cfg, err := config.Load(config.Environ(environ), nil)
	if err != nil {
		fmt.Fprintf(stderr, "gateway: invalid configuration:\n%s\n", indent(withPlanProblems(cfg, err).Error()))
		return 2
	}
	fillIn := func(c config.Config) config.Config {
		if c.ACME && c.ACMEStorage == "" {
			c.ACMEStorage = defaultACMEStorage(environ)
		}
		return c
	}
	cfg = fillIn(cfg)
	logger := newLogger(cfg, stderr)
	logOverrides(logger, cfg)
	if cmd == "check" {
		g, err := newBuilder(logger, nil, nil, false, nil)(cfg, nil)
		if err == nil {
			var shutdownTracing func(context.Context) error
			if _, shutdownTracing, err = tracing.Setup(context.Background(), tracing.Environ(environ), logger); err == nil {
				shutdownTracing(context.Background()) // nothing was traced: this only stops the exporter
			} else {
				g.Close()
			}
		}
		if err != nil {
			fmt.Fprintf(stderr, "gateway: invalid configuration:\n%s\n", indent(err.Error()))
			return 2
		}
		defer g.Close()
		printRoutes(stdout, cfg, g)
		printRunApps(stdout, cfg)
		printSettings(stdout, cfg)
		if err := printCertificates(stdout, cfg, g.Plan); err != nil {
			fmt.Fprintf(stderr, "gateway: invalid configuration:\n%s\n", indent(err.Error()))
			return 2
		}
		for _, w := range g.Warnings {
			fmt.Fprintln(stdout, "warning:", w)
		}
		fmt.Fprintln(stdout, "configuration ok")
		return 0
	}
	return serve(cfg, config.Environ(environ), tracing.Environ(environ), fillIn, logger, stderr)
}

// withPlanProblems adds to err, the problems config.Load found in the settings, those a build finds in
// the apps and routes of cfg (as far as it was read): the plan's, and each app's own (options of its kind,
// a missing root), the apps being built and closed again at once. So one run reports every problem. The
// primary's own problem is reported once: when the settings' check refused it, the build leaves it out.
// Run apps' address placeholders are filled in as `gateway check` fills them (nothing is started).
func withPlanProblems(cfg config.Config, err error) error {
	var errs config.Errors
	if !errors.As(err, &errs) {
		return err
	}
	// (Also without a run app read: a GATEWAY_RUN with a problem still declares names URLs use.)
	specs := cfg.RunSpecs()
	errs = append(errs, validateSpecs(specs)...)
	cfg = cfg.WithRunAddrs(checkAddrs(specs))
	for _, e := range errs {
		if strings.HasPrefix(e.Error(), cfg.Name("GATEWAY_PRIMARY")+"=") {
			cfg.Primary = ""
		}
	}
	discard := slog.New(slog.DiscardHandler)
	g, berr := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(discard, demo.Apps()), Logger: discard})
	if g != nil {
		g.Close()
	}
	var more config.Errors
	if errors.As(berr, &more) {
		errs = append(errs, more...)
	} else if berr != nil {
		errs = append(errs, berr)
	}
	return errs
}

// withDemo fills in the built-in demo apps when no application is configured.
func withDemo(cfg config.Config) (config.Config, bool) {
	if cfg.Primary != "" || len(cfg.Routes) > 0 {
		return cfg, false
	}
	cfg.Primary, cfg.Delegates = demo.Primary, config.AppList{demo.Delegate}
	return cfg, true
}

// newBuilder returns the function that turns a loaded configuration into a gateway (at startup and on
// every reload), with a fresh adapter registry each time. With logWarnings, the built configuration's
// warnings are logged (serving); `gateway check` prints them instead. prev is the gateway a reload
// replaces (nil at startup): the migration numbers of unchanged routes carry over from it. run starts the
// configuration's run apps before the build (nil: `gateway check`, which starts nothing).
func newBuilder(logger *slog.Logger, observe func(http.Handler) http.Handler, observeMetrics *metrics.Metrics, logWarnings bool, run *runner) func(cfg config.Config, prev *gateway.Gateway) (*gateway.Gateway, error) {
	return func(cfg config.Config, prev *gateway.Gateway) (*gateway.Gateway, error) {
		cfg, demoApps := withDemo(cfg)
		cfg, guards, built, runErr := run.prepare(cfg)
		if runErr != nil && run != nil {
			return nil, runErr
		}
		reg := builtin.Registry(logger, demo.Apps())
		g, err := gateway.Build(cfg, gateway.Options{Registry: reg, Logger: logger, Observe: observe, ObserveMetrics: observeMetrics, Previous: prev, RouteGuards: guards})
		if runErr != nil { // gateway check: the run apps' problems and the build's, in one report
			if g != nil {
				g.Close()
			}
			return nil, errors.Join(runErr, err)
		}
		built(g)
		if err == nil && demoApps {
			for i := range g.Routes { // no variable or file set them (check's FROM, /api/routes' source)
				g.Routes[i].Source = "built-in demo"
			}
		}
		if err == nil && logWarnings {
			for _, w := range g.Warnings {
				logger.Warn(w)
			}
		}
		return g, err
	}
}

// serve runs the gateway until SIGTERM or SIGINT, then drains requests in flight for
// GATEWAY_SHUTDOWN_TIMEOUT. SIGHUP, and changes to the configuration or TLS files, reload the
// configuration: see gateway.Reloader. The admin listener (GATEWAY_ADMIN_ADDR) runs next to the main one.
// environ holds the GATEWAY_* variables, otelEnv the OTEL_* ones (tracing; read once, not on reload);
// fillIn completes every loaded configuration with the defaults that depend on the process (the ACME
// storage directory). The steps after the build: listen (the client-facing listeners), startAdmin,
// awaitStop (the signals), drain.
func serve(cfg config.Config, environ, otelEnv map[string]string, fillIn func(config.Config) config.Config, logger *slog.Logger, stderr io.Writer) int {
	invalid := func(err error) int {
		fmt.Fprintf(stderr, "gateway: invalid configuration:\n%s\n", indent(err.Error()))
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lv := gateway.NewLive(logger)
	reg.MustRegister(admin.CurrentCollectors(lv.Gateway))
	m, err := metrics.New(reg, func() []metrics.AppHealth { return admin.Upstreams(lv.Gateway()) })
	if err != nil {
		logger.Error("registering metrics", "cause", err)
		return 1
	}
	// Tracing (issue 5) is on only when an OTEL_EXPORTER_OTLP_*ENDPOINT variable is set; its span wraps the
	// metrics middleware. Spans still queued are flushed on the way out, after the drain.
	tp, shutdownTracing, err := tracing.Setup(context.Background(), otelEnv, logger)
	if err != nil {
		return invalid(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := shutdownTracing(ctx); err != nil {
			logger.Warn("tracing: flushing spans at shutdown", "cause", err)
		}
	}()
	traceMW := tracing.Middleware(tp)
	// Run apps (issue 15) start before the gateway listens, and stop after its drain: this defer runs
	// after every later one (lv.Close among them).
	run := newRunner(logger, reg)
	defer run.shutdown()
	// Without tracing, the observer is the metrics alone: the fast lane's express path counts with them.
	var observeMetrics *metrics.Metrics
	if !tracing.Enabled(tp) {
		observeMetrics = m
	}
	build := newBuilder(logger, func(h http.Handler) http.Handler { return traceMW(m.Middleware(h)) }, observeMetrics, true, run)
	g, err := build(cfg, nil)
	if err != nil {
		return invalid(err)
	}
	lv.Swap(g)
	defer lv.Close()
	certs := &gateway.CertStore{}
	if cfg.TLSCert != "" {
		cert, err := gateway.LoadCertificate(cfg)
		if err != nil {
			return invalid(err)
		}
		certs.Store(cert)
	}
	// A reload drops the request series of routes and apps it removed from /metrics.
	retain := func(g *gateway.Gateway) {
		var routes, apps []string
		for _, r := range g.Routes {
			routes = append(routes, r.Pattern)
		}
		for _, a := range g.Apps {
			apps = append(apps, a.Name)
		}
		m.Retain(routes, apps)
	}
	load := func() (config.Config, error) {
		cfg, err := config.Load(environ, nil)
		if err == nil {
			logOverrides(logger, cfg)
		} else {
			err = withPlanProblems(cfg, err) // every problem, as at startup and in `gateway check`
		}
		return fillIn(cfg), err
	}
	rl := gateway.NewReloader(cfg, lv, load, build)
	rl.Logger, rl.Certificates, rl.Retain = logger, certs, retain
	run.restart = func(trigger string, apps []string) error { return restartRunApps(rl, run, logger, trigger, apps) }
	_, demoMode := withDemo(cfg)

	l, code := listen(cfg, lv, certs, logger, invalid)
	if l == nil {
		return code
	}
	defer l.close()
	if l.acme != nil {
		rl.BeforeSwap = acmeOnReload(l.acme, certs, logger)
	}
	reg.MustRegister(l.front.Collector())
	if l.plain != nil {
		reg.MustRegister(l.plain.Collector())
	}
	if l.h3 != nil {
		reg.MustRegister(l.h3.Collector())
	}
	if files, ok := connlimit.FileLimit(); ok && cfg.MaxConns > 0 && uint64(cfg.MaxConns)*2 > files {
		logger.Warn("GATEWAY_MAX_CONNS is close to or above the file descriptor limit: each proxied request may hold a client and an upstream connection, so accept or upstream dials can fail before the limit is reached; raise the limit (ulimit -n) or lower GATEWAY_MAX_CONNS",
			"GATEWAY_MAX_CONNS", cfg.MaxConns, "file_limit", files)
	}
	adminSrv, ok := startAdmin(cfg, lv, reg, l.acme, logger)
	if !ok {
		l.ln.Close()
		return 1
	}
	// Signals and the file watch are set up before the "listening" line, so whoever waits for that line
	// (a test, a supervisor) can rely on a change or a signal sent after it being seen.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	if err := rl.Watch(watchCtx, 100*time.Millisecond); err != nil {
		logger.Warn("cannot watch the configuration files; SIGHUP still reloads", "cause", err)
	}
	l.logListening(logger, len(g.Routes), demoMode)

	errc, drainLogged := l.serve(logger)
	sig, ok := awaitStop(sigs, errc, rl, run, logger)
	if !ok {
		return 1
	}
	stopWatch()
	cfg = rl.Running()
	logger.Info("shutting down", "signal", sig.String(), "timeout", time.Duration(cfg.ShutdownTimeout))
	return drain(time.Duration(cfg.ShutdownTimeout), l, lv, adminSrv, errc, drainLogged, logger)
}

// listeners are the client-facing servers of the process, as listen opens them.
type listeners struct {
	ln     net.Listener     // the main listener (GATEWAY_ADDR)
	httpLn net.Listener     // the plain HTTP listener (GATEWAY_HTTP_ADDR), nil when off
	scheme string           // the main listener's
	front  *gateway.Front   // the main listener's stack and server
	plain  *gateway.Front   // the plain HTTP listener's, nil when off
	h3     *gateway.HTTP3   // HTTP/3 on UDP at the main port, nil when off
	acme   *autotls.Manager // nil when ACME is off
	n      int              // how many of front, plain and h3 serve
}

// listen opens the main listener, the plain HTTP one and HTTP/3 next to HTTPS, with the certificate
// source (the static pair in certs, or ACME), and builds their fronts for lv. On failure it logs or
// reports the cause (invalid: the configuration's fault), closes what it opened, and returns nil and the
// exit code.
func listen(cfg config.Config, lv *gateway.Live, certs *gateway.CertStore, logger *slog.Logger, invalid func(error) int) (*listeners, int) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		logger.Error("cannot listen", "setting", cfg.Name("GATEWAY_ADDR"), "addr", cfg.Addr, "cause", err)
		return nil, 1
	}
	l := &listeners{ln: ln, scheme: "http", n: 1}
	fail := func(code int) (*listeners, int) {
		ln.Close()
		l.close()
		return nil, code
	}
	// The listener stack (head scan, connection limits, idle parking) and the server, as every harness
	// builds it (gateway.NewFront).
	var fopts gateway.FrontOptions
	if cfg.TLSCert != "" {
		l.scheme = "https"
		fopts.TLSConfig = &tls.Config{GetCertificate: certs.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	// The plain HTTP listener next to HTTPS (GATEWAY_HTTP_ADDR): ACME HTTP-01 challenges, and 308
	// redirects to HTTPS for every route that did not opt out.
	if cfg.HTTPAddr != "" {
		if l.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			logger.Error("cannot listen", "setting", cfg.Name("GATEWAY_HTTP_ADDR"), "addr", cfg.HTTPAddr, "cause", err, "hint", "set GATEWAY_HTTP_ADDR= (empty) for no plain HTTP listener (ACME then validates over TLS-ALPN-01 only)")
			return fail(1)
		}
	}
	if cfg.ACME {
		l.scheme = "https"
		var httpAddr net.Addr
		if l.httpLn != nil {
			httpAddr = l.httpLn.Addr()
		}
		if l.acme, err = newACME(cfg, lv.Gateway().Plan, certs.Load(), httpAddr, ln.Addr(), logger); err != nil {
			return fail(invalid(err))
		}
		fopts.TLSConfig = l.acme.TLSConfig()
	}
	// HTTP/3 next to HTTPS, on UDP at the same port, with the same handler and TLS configuration;
	// responses over HTTP/1 and HTTP/2 advertise it (Alt-Svc).
	var handler http.Handler = lv
	if fopts.TLSConfig != nil && cfg.HTTP3 {
		udp, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			l.h3, err = gateway.NewHTTP3(cfg, lv, udp, fopts.TLSConfig, logger)
		}
		if err != nil {
			logger.Error("cannot listen for HTTP/3", "setting", cfg.Name("GATEWAY_ADDR"), "addr", "udp "+ln.Addr().String(), "cause", err, "hint", "GATEWAY_HTTP3=false serves HTTPS without HTTP/3")
			return fail(1)
		}
		handler = l.h3.AltSvc(lv)
		l.n++
	}
	l.front = gateway.NewFront(cfg, handler, ln, logger, fopts)
	if l.httpLn != nil {
		pcfg := cfg
		pcfg.TLSCert, pcfg.Addr = "", cfg.HTTPAddr
		var h http.Handler = lv.PlainHTTP()
		if l.acme != nil {
			h = l.acme.HTTPChallenge(h)
		}
		// Its own limits (the same settings) and its own connection series (listener="http").
		l.plain = gateway.NewFront(pcfg, h, l.httpLn, logger, gateway.FrontOptions{Listener: gateway.ListenerHTTP})
		l.n++
	}
	return l, 0
}

// close releases what the servers' Shutdown does not: the ACME manager, then the plain HTTP listener.
func (l *listeners) close() {
	if l.acme != nil {
		l.acme.Close()
	}
	if l.httpLn != nil {
		l.httpLn.Close()
	}
}

// acmeOnReload is the Reloader's BeforeSwap with ACME on: a reload may change the static certificate,
// which may then cover other names, and the routes' hosts; the manager learns both before the new
// configuration serves. The ACME manager stays in the command rather than in gateway.Reloader: it is the
// command's choice of certificate source (package autotls), which an embedding program may not make.
func acmeOnReload(acme *autotls.Manager, certs *gateway.CertStore, logger *slog.Logger) func(config.Config, *gateway.Gateway) {
	return func(cfg config.Config, g *gateway.Gateway) {
		static := certs.Load()
		if err := acme.SetStatic(static); err != nil {
			logger.Error("static certificate not usable next to ACME; keeping the previous one", "cause", err)
		}
		if err := setACMENames(acme, cfg, g.Plan, static, logger); err != nil {
			logger.Error("handing the new names to ACME", "cause", err)
		}
	}
}

// startAdmin serves the admin listener (GATEWAY_ADMIN_ADDR) when one is configured; it returns nil when
// none is, and false when it cannot listen (logged).
func startAdmin(cfg config.Config, lv *gateway.Live, reg *prometheus.Registry, acme *autotls.Manager, logger *slog.Logger) (*http.Server, bool) {
	if cfg.AdminAddr == "" {
		return nil, true
	}
	aln, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		logger.Error("cannot listen", "setting", cfg.Name("GATEWAY_ADMIN_ADDR"), "addr", cfg.AdminAddr, "cause", err, "hint", "set GATEWAY_ADMIN_ADDR= (empty) to turn the admin listener off")
		return nil, false
	}
	aopts := admin.Options{Pprof: cfg.AdminPprof}
	if acme != nil {
		aopts.Certificates = acme
	}
	adminSrv := &http.Server{
		Handler:           admin.HandlerWith(lv.Gateway, reg, aopts),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("admin listening", "addr", aln.Addr().String(), "endpoints", adminEndpoints(cfg, lv.Gateway(), acme != nil))
	go adminSrv.Serve(aln)
	return adminSrv, true
}

// adminEndpoints lists, for the "admin listening" line, the endpoints the admin listener serves with g:
// its own, then those g's components contribute (the migration report; /api/processes only when apps run).
func adminEndpoints(cfg config.Config, g *gateway.Gateway, certificates bool) string {
	endpoints := []string{"/healthz", "/readyz", "/metrics", "/api/routes", "/api/upstreams"}
	if certificates {
		endpoints = append(endpoints, "/api/certificates")
	}
	if cfg.AdminPprof {
		endpoints = append(endpoints, "/debug/pprof/")
	}
	if g != nil {
		endpoints = append(endpoints, slices.Sorted(maps.Keys(g.Admin))...)
	}
	return strings.Join(endpoints, " ")
}

// logListening logs the lines that say the gateway serves: the plain HTTP listener's, "gateway
// listening", and with the demo, where to look.
func (l *listeners) logListening(logger *slog.Logger, routes int, demoMode bool) {
	if l.plain != nil {
		logger.Info("plain http: answering ACME challenges and redirecting to https", "addr", l.httpLn.Addr().String(), "serves", "ACME HTTP-01 challenges, routes with https_redirect=false; redirects the rest to https")
	}
	listening := []any{"addr", l.ln.Addr().String(), "scheme", l.scheme, "version", versionString(), "routes", routes}
	if l.h3 != nil {
		listening = append(listening, "http3", "udp "+l.h3.Addr().String())
	}
	logger.Info("gateway listening", listening...)
	if demoMode {
		base := l.scheme + "://" + displayAddr(l.ln.Addr())
		logger.Info("no application configured: serving the built-in demo",
			"new_app", base+"/", "legacy_app", base+"/orders/42",
			"next", "point the gateway at real apps: GATEWAY_PRIMARY=http://127.0.0.1:8000 GATEWAY_DELEGATES=... GATEWAY_ROUTES='/api/=http://127.0.0.1:3000' (see README.md)")
	}
}

// serve starts the servers. Each one's Serve result arrives on errc (l.n of them); drainLogged is closed
// once the "draining" line is logged.
func (l *listeners) serve(logger *slog.Logger) (errc chan error, drainLogged chan struct{}) {
	// Shutdown closes the listeners before it calls this, so the line means no new connection is accepted.
	// net/http runs it on its own goroutine: "stopped" waits for it, so the two lines keep their order and
	// neither is lost when nothing was in flight and Shutdown returns at once.
	drainLogged = make(chan struct{})
	l.front.Server.RegisterOnShutdown(func() {
		logger.Info("listener closed; draining requests in flight")
		close(drainLogged)
	})
	errc = make(chan error, 3)
	go func() { errc <- l.front.Serve() }()
	if l.plain != nil {
		go func() { errc <- l.plain.Serve() }()
	}
	if l.h3 != nil {
		go func() { errc <- l.h3.Serve() }()
	}
	return errc, drainLogged
}

// awaitStop handles the signals until one asks to stop: SIGHUP reloads the configuration, SIGUSR2
// restarts every run app without downtime. It returns the stopping signal, or false when a server
// failed first (logged).
func awaitStop(sigs <-chan os.Signal, errc <-chan error, rl *gateway.Reloader, run *runner, logger *slog.Logger) (os.Signal, bool) {
	for {
		select {
		case err := <-errc:
			logger.Error("server stopped", "cause", err)
			return nil, false
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				rl.Reload("SIGHUP", false)
			case syscall.SIGUSR2:
				go run.restart("SIGUSR2", nil) // every run app, without downtime; signals keep being read meanwhile
			default:
				return sig, true
			}
		}
	}
}

// drain shuts the servers down within timeout: requests in flight finish (HTTP/1, HTTP/2, HTTP/3 and
// plain HTTP), then upgraded connections (WebSocket tunnels), which Shutdown does not track. It returns
// the exit code: 1 when the timeout cut something.
func drain(timeout time.Duration, l *listeners, lv *gateway.Live, adminSrv *http.Server, errc <-chan error, drainLogged <-chan struct{}, logger *slog.Logger) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if adminSrv != nil {
		defer adminSrv.Close()
	}
	srv := l.front.Server
	plainDone := make(chan error, 1)
	if l.plain != nil {
		go func() { plainDone <- l.plain.Server.Shutdown(ctx) }()
	} else {
		plainDone <- nil
	}
	h3Done := make(chan error, 1)
	if l.h3 != nil {
		go func() { h3Done <- l.h3.Shutdown(ctx) }() // GOAWAY, then the requests in flight finish
	} else {
		h3Done <- nil
	}
	if err := srv.Shutdown(ctx); err != nil {
		logger.Warn("shutdown timeout passed with requests still in flight; closing them", "cause", err)
		srv.Close()
		if l.plain != nil {
			l.plain.Server.Close()
		}
		if l.h3 != nil {
			l.h3.Close()
		}
		return 1
	}
	if err := <-h3Done; err != nil {
		logger.Warn("shutdown timeout passed with HTTP/3 requests still in flight; closing them", "cause", err)
		return 1
	}
	if err := <-plainDone; err != nil {
		logger.Warn("shutdown timeout passed with plain HTTP requests still in flight; closing them", "cause", err)
		l.plain.Server.Close()
		return 1
	}
	<-drainLogged
	// Shutdown does not wait for hijacked connections, nor for the fast lane's exchanges (the lane serves
	// them beside the server): a WebSocket tunnel's handler, or an exchange the lane carries, may still
	// run, on the current gateway or on one a reload replaced. What is still open when the shutdown
	// timeout passes is cut as the process exits.
	n, drained := lv.Drain()
	if n > 0 {
		logger.Info("waiting for upgraded connections (WebSocket tunnels) and the fast lane's exchanges to end", "count", n)
	}
	select {
	case <-drained:
	case <-ctx.Done():
		logger.Warn("shutdown timeout passed with upgraded connections or fast lane exchanges still open; cutting them", "count", lv.Running())
		return 1
	}
	for range l.n {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("server stopped", "cause", err)
		}
	}
	logger.Info("stopped")
	return 0
}

func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func printRoutes(w io.Writer, cfg config.Config, g *gateway.Gateway) {
	fmt.Fprintf(w, "listen %s\n\n", cfg.Addr)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATTERN\tAPP\tKIND\tSTRIP\tCASCADE\tSTAGE\tMIDDLEWARE\tFROM")
	for _, r := range g.Routes {
		stage := r.Stage
		if stage == "" {
			stage = "-"
		} else if r.Old != "" {
			stage += " (old " + r.Old + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\t%s\t%s\t%s\n", r.Pattern, r.App, r.Kind, r.StripPrefix, r.Cascade, stage, middlewareNames(r.Middleware), r.Source)
	}
	tw.Flush()
	printMiddleware(w, g)
	fmt.Fprintf(w, "\npass statuses %v, cascade body limit %s, max body %s, max header %s\n",
		[]int(cfg.PassStatus), text(cfg.CascadeBodyLimit), text(cfg.MaxBodySize), text(cfg.MaxHeaderSize))
	fmt.Fprintf(w, "max connections %s, per client %s; read header timeout %s, body timeout %s, idle timeout %s\n",
		limit(cfg.MaxConns), limit(cfg.MaxConnsPerClient), time.Duration(cfg.ReadHeaderTimeout), time.Duration(cfg.BodyTimeout), time.Duration(cfg.IdleTimeout))
}

// logOverrides logs one line per variable that replaced a key of the configuration file, so that whoever
// edits the file learns why the edit does not run.
func logOverrides(logger *slog.Logger, cfg config.Config) {
	for _, o := range cfg.Overrides {
		logger.Warn(o.String()+"; unset the variable for the file to count", "variable", o.Var, "file", o.File, "line", o.Line)
	}
}

// printSettings lists every setting with the value that runs and where it came from (a variable, a file
// line, or the default).
func printSettings(w io.Writer, cfg config.Config) {
	fmt.Fprintln(w, "\nsettings:")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tFILE KEY\tVALUE\tFROM")
	for _, s := range cfg.Settings() {
		key, value := s.Key, s.Value
		if key == "" {
			key = "-"
		}
		if value == "" {
			value = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Variable, key, value, s.From)
	}
	tw.Flush()
}

// middlewareNames is the MIDDLEWARE column: names only, outermost first.
func middlewareNames(desc []string) string {
	if len(desc) == 0 {
		return "-"
	}
	names := make([]string, len(desc))
	for i, d := range desc {
		names[i], _, _ = strings.Cut(d, "(")
	}
	return strings.Join(names, ">")
}

// printMiddleware lists every middleware chain in full, outermost first: the global one wraps all routes.
func printMiddleware(w io.Writer, g *gateway.Gateway) {
	any := len(g.Middleware) > 0
	for _, r := range g.Routes {
		any = any || len(r.Middleware) > 0
	}
	if !any {
		return
	}
	fmt.Fprintln(w, "\nmiddleware, outermost first (the global chain wraps every route's):")
	if len(g.Middleware) > 0 {
		fmt.Fprintf(w, "  global\n")
		for i, d := range g.Middleware {
			fmt.Fprintf(w, "    %d. %s\n", i+1, d)
		}
	}
	for _, r := range g.Routes {
		if len(r.Middleware) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s\n", r.Pattern)
		for i, d := range r.Middleware {
			fmt.Fprintf(w, "    %d. %s\n", i+1, d)
		}
	}
}

// limit prints a connection limit, 0 being none.
func limit(n int) string {
	if n <= 0 {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

func text(s config.Size) string { b, _ := s.MarshalText(); return string(b) }

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// commands are the words run accepts first, for the did-you-mean of a misspelt one.
var commands = []string{"serve", "check", "report", "init", "version", "help"}

// didYouMean is ", did you mean X?" for a misspelt command (gateway chek), else "".
func didYouMean(cmd string) string {
	if c := suggest.Closest(cmd, commands); c != "" {
		return fmt.Sprintf(" (did you mean %q?)", c)
	}
	return ""
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `usage: gateway [serve|check|report|init|version]

  serve    serve on GATEWAY_ADDR (default :8080); with no application configured, the built-in demo
  check    validate the configuration and print the resolved route table without serving
  report   print the migration report of a running gateway (from GATEWAY_ADMIN_ADDR)
  init     write a commented YAML file running the named stacks' apps: gateway init django flask php node static
  version  print the version

Configuration comes from GATEWAY_* variables (%s)
and the optional YAML file named by GATEWAY_CONFIG. See README.md.
`, strings.Join(config.Variables(), ", "))
}
