package gateway

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

	"github.com/switchyard/switchyard/config"
)

// CertStore holds the serving certificate. Its GetCertificate, set as tls.Config.GetCertificate, reads
// it for every handshake, so a certificate a Reloader stores takes effect for new connections at once.
// The zero value holds none and is ready to use.
type CertStore struct {
	cert atomic.Pointer[tls.Certificate]
}

// GetCertificate returns the stored certificate (nil when none is stored).
func (c *CertStore) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cert.Load(), nil
}

// Load returns the stored certificate (nil when none is stored).
func (c *CertStore) Load() *tls.Certificate { return c.cert.Load() }

// Store replaces the stored certificate.
func (c *CertStore) Store(cert *tls.Certificate) { c.cert.Store(cert) }

// LoadCertificate reads the pair cfg names (GATEWAY_TLS_CERT, GATEWAY_TLS_KEY); the error names both
// variables and their values.
func LoadCertificate(cfg config.Config) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("GATEWAY_TLS_CERT=%q, GATEWAY_TLS_KEY=%q: %v", cfg.TLSCert, cfg.TLSKey, err)
	}
	return &cert, nil
}

// Reloader is the hot reload of a Live gateway, as the gateway command runs it: Reload reads the
// configuration again (Load), builds it (Build) next to the running one, and swaps it in through Live,
// so requests in flight finish on the configuration they started on. A configuration that does not load
// or build is logged and the running one kept. Watch reloads when the configuration or TLS files change.
//
// The settings the process reads once, at start (RestartSettings: the listener stack's, the other
// listeners', the certificate source's, the shutdown timeout, logging), cannot change without a restart: a
// reload that changes one logs a warning naming it and keeps serving with the old value.
//
// Create it with NewReloader after the first Gateway is swapped into Live; set the optional fields
// before the first Reload, Rebuild or Watch, and do not change them after. Reload, Rebuild and Running
// are safe for concurrent use; reloads run one at a time.
type Reloader struct {
	// Logger receives the reload lines (default: the Live's logger).
	Logger *slog.Logger
	// Certificates, when not nil and the gateway was started with TLS (GATEWAY_TLS_CERT), receives the
	// certificate pair of every configuration a reload installs.
	Certificates *CertStore
	// Retain, when not nil, is called with the Gateway a reload installed, at once and again when the
	// replaced one has finished its last request (a request still running on the old one may have
	// recreated a series): it drops the metrics series of removed routes and apps.
	Retain func(*Gateway)
	// BeforeSwap, when not nil, is called with a configuration that built and its Gateway, after its
	// certificate is stored and before the Gateway is swapped in: the place to hand its names
	// (g.Plan.CertificateNames) to a certificate manager.
	BeforeSwap func(cfg config.Config, g *Gateway)

	load  func() (config.Config, error)
	build func(cfg config.Config, prev *Gateway) (*Gateway, error)
	live  *Live
	// started is what the listeners were started with.
	started config.Config

	mu      sync.Mutex
	running config.Config
	sum     [32]byte // of the files the running configuration was read from
}

// NewReloader returns the Reloader of live, whose current Gateway was built from started. load reads the
// configuration afresh; when it fails it should still return the configuration as far as it was read
// (config.Load does), whose ConfigFile, TLSCert and TLSKey name the files a later change of which is
// worth a retry. build builds a configuration; prev is the Gateway it replaces, from which the migration
// numbers of unchanged routes carry over (Options.Previous).
func NewReloader(started config.Config, live *Live, load func() (config.Config, error), build func(cfg config.Config, prev *Gateway) (*Gateway, error)) *Reloader {
	return &Reloader{load: load, build: build, live: live, started: started, running: started, sum: filesSum(started)}
}

func (rl *Reloader) logger() *slog.Logger {
	if rl.Logger != nil {
		return rl.Logger
	}
	return rl.live.logger
}

// Running returns the configuration running now (the last one a reload installed).
func (rl *Reloader) Running() config.Config {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.running
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

// Reload loads and builds the configuration; an invalid one is logged and the running one kept, and the
// error returned. trigger names the cause in the log lines ("SIGHUP", "file change"). With onlyIfChanged
// it does nothing when the files read are byte for byte what the running configuration was read from.
func (rl *Reloader) Reload(trigger string, onlyIfChanged bool) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	logger := rl.logger()
	if onlyIfChanged && filesSum(rl.running) == rl.sum {
		return nil
	}
	cfg, err := rl.load()
	sum := filesSum(cfg)
	var cert *tls.Certificate
	if err == nil && cfg.TLSCert != "" {
		cert, err = LoadCertificate(cfg)
	}
	var g *Gateway
	if err == nil {
		g, err = rl.build(cfg, rl.live.Gateway())
	}
	if err != nil {
		logger.Error("configuration reload failed; keeping the running configuration", "trigger", trigger, "cause", err)
		rl.sum = sum // don't retry the same broken files on every unrelated event
		return err
	}
	rl.warnRestartSettings(cfg)
	if cert != nil && rl.started.TLSCert != "" && rl.Certificates != nil {
		rl.Certificates.Store(cert)
	}
	if rl.BeforeSwap != nil {
		rl.BeforeSwap(cfg, g)
	}
	retired, seq := rl.live.Swap(g)
	rl.running, rl.sum = cfg, sum
	if rl.Retain != nil {
		rl.Retain(g)
	}
	// The migration numbers of routes whose migration is unchanged carried over; the line names the others.
	attrs := []any{"trigger", trigger, "generation", seq, "routes", len(g.Routes)}
	if len(g.NumbersReset) > 0 {
		attrs = append(attrs, "migration_numbers_reset", strings.Join(g.NumbersReset, " "))
	}
	if len(g.NumbersRemoved) > 0 {
		attrs = append(attrs, "migration_numbers_removed", strings.Join(g.NumbersRemoved, " "))
	}
	logger.Info("configuration reloaded", attrs...)
	go func() {
		<-retired
		logger.Debug("previous configuration closed", "generation", seq-1)
		if rl.Retain != nil {
			rl.Retain(rl.live.Gateway()) // a request still running on the old one may have recreated a series
		}
	}()
	return nil
}

// warnRestartSettings logs one warning per setting cfg changes that only a restart applies
// (RestartSettings, compared as a whole).
func (rl *Reloader) warnRestartSettings(cfg config.Config) {
	for _, c := range RestartSettingsOf(rl.started).Changes(RestartSettingsOf(cfg)) {
		name := cfg.Name(c.Variable)
		if c.What != "" {
			name = c.What + " (" + name + ")"
		}
		rl.logger().Warn("setting changed but needs a restart to apply; still using the old value", "setting", name, "running", c.Running, "configured", c.Configured)
	}
}

// Rebuild builds the running configuration again, without reading anything, and swaps it in. before,
// when not nil, runs first, under the reload lock, to mark what the build is to do differently (the
// gateway command marks the run apps to start afresh). It returns the new generation number; on a build
// error the running Gateway stays and nothing is logged (the caller knows what it was for).
func (rl *Reloader) Rebuild(before func()) (int, error) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if before != nil {
		before()
	}
	g, err := rl.build(rl.running, rl.live.Gateway())
	if err != nil {
		return 0, err
	}
	retired, seq := rl.live.Swap(g)
	if rl.Retain != nil {
		rl.Retain(g)
	}
	go func() {
		<-retired
		if rl.Retain != nil {
			rl.Retain(rl.live.Gateway())
		}
	}()
	return seq, nil
}

// Watch reloads when the configuration or TLS files of the running configuration change, until ctx is
// done. It watches their directories, not the files: editors and Kubernetes ConfigMaps replace files by
// rename or symlink swap, which a watch on the file itself would lose. Events are coalesced for settle,
// then Reload runs if the contents changed. With no file to watch it does nothing; the error is that of
// setting the watch up.
func (rl *Reloader) Watch(ctx context.Context, settle time.Duration) error {
	cfg := rl.Running()
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
		// Events settle for settle before a reload, but for no longer than maxWait after the first of
		// them: every change in the directory counts (a Kubernetes ConfigMap swaps a symlink beside the
		// file), and a file there that keeps changing (a log, a database) must not hold a reload off.
		maxWait := 10 * settle
		var first time.Time // the first event not reloaded yet (zero: none)
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
				now := time.Now()
				if first.IsZero() {
					first = now
				}
				if wait := min(settle, first.Add(maxWait).Sub(now)); wait > 0 {
					timer.Reset(wait)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				rl.logger().Warn("watching configuration files", "cause", err)
			case <-timer.C:
				first = time.Time{}
				rl.Reload("file change", true)
			}
		}
	}()
	return nil
}
