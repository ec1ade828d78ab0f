package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/switchyard/switchyard/autotls"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
)

// certStore holds the serving certificate; GetCertificate reads it for every handshake, so a reload
// takes effect for new connections at once.
type certStore struct {
	cert atomic.Pointer[tls.Certificate]
}

func (c *certStore) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// loadCert reads the configured pair; the error names both variables.
func loadCert(cfg config.Config) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("GATEWAY_TLS_CERT=%q, GATEWAY_TLS_KEY=%q: %v", cfg.TLSCert, cfg.TLSKey, err)
	}
	return &cert, nil
}

// reloader re-reads the configuration and swaps the gateway. Reload is safe to call from several
// goroutines; reloads run one at a time.
type reloader struct {
	environ map[string]string
	fillIn  func(config.Config) config.Config // process-dependent defaults (nil: none)
	logger  *slog.Logger
	build   func(cfg config.Config, prev *gateway.Gateway) (*gateway.Gateway, error)
	// retain, when not nil, is called with the gateway a reload installed, at once and again when the
	// replaced one has finished its last request: it drops the metrics series of removed routes and apps.
	retain  func(*gateway.Gateway)
	live    *gateway.Live
	certs   *certStore
	acme    *autotls.Manager // nil when ACME is off
	run     *runner          // the run apps (Restart)
	started config.Config    // what the listeners were started with

	mu      sync.Mutex
	running config.Config
	sum     [32]byte // of the files the running configuration was read from
}

// filesSum hashes the configuration file and the TLS files (missing files hash as empty), so watcher
// events for unrelated files in the same directories do not rebuild anything.
func filesSum(cfg config.Config) [32]byte {
	h := sha256.New()
	for _, p := range []string{cfg.ConfigFile, cfg.TLSCert, cfg.TLSKey} {
		if p == "" {
			continue
		}
		b, _ := os.ReadFile(p)
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}

// Reload loads and builds the configuration; an invalid one is logged and the running one kept. With
// onlyIfChanged it does nothing when the files read are byte-for-byte what the running one was read from.
func (rl *reloader) Reload(trigger string, onlyIfChanged bool) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if onlyIfChanged && filesSum(rl.running) == rl.sum {
		return nil
	}
	cfg, err := config.Load(rl.environ, nil)
	if err == nil {
		logOverrides(rl.logger, cfg)
	}
	if rl.fillIn != nil {
		cfg = rl.fillIn(cfg)
	}
	sum := filesSum(cfg)
	var cert *tls.Certificate
	if err == nil && cfg.TLSCert != "" {
		cert, err = loadCert(cfg)
	}
	var g *gateway.Gateway
	if err == nil {
		g, err = rl.build(cfg, rl.live.Gateway())
	}
	if err != nil {
		rl.logger.Error("configuration reload failed; keeping the running configuration", "trigger", trigger, "cause", err)
		rl.sum = sum // don't retry the same broken files on every unrelated event
		return err
	}
	for _, c := range []struct {
		name      string
		now, then any
	}{
		{"GATEWAY_ADDR", cfg.Addr, rl.started.Addr},
		{"GATEWAY_ADMIN_ADDR", cfg.AdminAddr, rl.started.AdminAddr},
		{"GATEWAY_ADMIN_PPROF", cfg.AdminPprof, rl.started.AdminPprof},
		{"TLS on/off (GATEWAY_TLS_CERT)", cfg.TLSCert != "", rl.started.TLSCert != ""},
		{"GATEWAY_ACME", cfg.ACME, rl.started.ACME},
		{"GATEWAY_ACME_CA", cfg.ACMECA, rl.started.ACMECA},
		{"GATEWAY_ACME_EMAIL", cfg.ACMEEmail, rl.started.ACMEEmail},
		{"GATEWAY_ACME_STORAGE", cfg.ACMEStorage, rl.started.ACMEStorage},
		{"GATEWAY_ACME_CA_ROOT", cfg.ACMECARoot, rl.started.ACMECARoot},
		{"GATEWAY_HTTP_ADDR", cfg.HTTPAddr, rl.started.HTTPAddr},
		{"GATEWAY_HTTP3", cfg.HTTP3, rl.started.HTTP3},
		{"GATEWAY_READ_HEADER_TIMEOUT", cfg.ReadHeaderTimeout, rl.started.ReadHeaderTimeout},
		{"GATEWAY_IDLE_TIMEOUT", cfg.IdleTimeout, rl.started.IdleTimeout},
		{"GATEWAY_IDLE_PARK_AFTER", cfg.IdleParkAfter, rl.started.IdleParkAfter},
		{"GATEWAY_MAX_HEADER_SIZE", cfg.MaxHeaderSize, rl.started.MaxHeaderSize},
		{"GATEWAY_MAX_CONNS", cfg.MaxConns, rl.started.MaxConns},
		{"GATEWAY_MAX_CONNS_PER_CLIENT", cfg.MaxConnsPerClient, rl.started.MaxConnsPerClient},
		{"GATEWAY_LOG_FORMAT", cfg.LogFormat, rl.started.LogFormat},
		{"GATEWAY_LOG_LEVEL", cfg.LogLevel, rl.started.LogLevel},
	} {
		if c.now != c.then {
			rl.logger.Warn("setting changed but needs a restart to apply; still using the old value", "setting", cfg.Name(c.name), "running", fmt.Sprint(c.then), "configured", fmt.Sprint(c.now))
		}
	}
	if cert != nil && rl.started.TLSCert != "" {
		rl.certs.cert.Store(cert)
	}
	if rl.acme != nil {
		// The static certificate may now cover other names, and the routes other hosts.
		static := rl.certs.cert.Load()
		if err := rl.acme.SetStatic(static); err != nil {
			rl.logger.Error("static certificate not usable next to ACME; keeping the previous one", "cause", err)
		}
		if err := setACMENames(rl.acme, cfg, static, rl.logger); err != nil {
			rl.logger.Error("handing the new names to ACME", "cause", err)
		}
	}
	retired, seq := rl.live.Swap(g)
	rl.running, rl.sum = cfg, sum
	if rl.retain != nil {
		rl.retain(g)
	}
	// The migration numbers of routes whose migration is unchanged carried over; the line names the others.
	attrs := []any{"trigger", trigger, "generation", seq, "routes", len(g.Routes)}
	if len(g.NumbersReset) > 0 {
		attrs = append(attrs, "migration_numbers_reset", strings.Join(g.NumbersReset, " "))
	}
	if len(g.NumbersRemoved) > 0 {
		attrs = append(attrs, "migration_numbers_removed", strings.Join(g.NumbersRemoved, " "))
	}
	rl.logger.Info("configuration reloaded", attrs...)
	go func() {
		<-retired
		rl.logger.Debug("previous configuration closed", "generation", seq-1)
		if rl.retain != nil {
			rl.retain(rl.live.Gateway()) // a request still running on the old one may have recreated a series
		}
	}()
	return nil
}

// watch reloads when the configuration or TLS files change. It watches their directories, not the
// files: editors and Kubernetes ConfigMaps replace files by rename or symlink swap, which a watch on the
// file itself would lose. Events are coalesced for settle, then Reload runs if the contents changed.
func (rl *reloader) watch(ctx context.Context, settle time.Duration) error {
	rl.mu.Lock()
	cfg := rl.running
	rl.mu.Unlock()
	dirs := map[string]bool{}
	for _, p := range []string{cfg.ConfigFile, cfg.TLSCert, cfg.TLSKey} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				dirs[filepath.Dir(abs)] = true
			}
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return fmt.Errorf("watching %s: %v", d, err)
		}
	}
	go func() {
		defer w.Close()
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if ev.Op == fsnotify.Chmod {
					continue
				}
				timer.Reset(settle)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				rl.logger.Warn("watching configuration files", "cause", err)
			case <-timer.C:
				rl.Reload("file change", true)
			}
		}
	}()
	return nil
}
