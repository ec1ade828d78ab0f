package upstream

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// runHealth probes every instance at once, then every HealthInterval, until ctx is done.
func (s *Set) runHealth(ctx context.Context, probe Probe) {
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	for {
		s.checkAll(ctx, probe)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkAll probes the instances concurrently (one slow instance must not delay the verdict on the others)
// and waits for every probe, each bounded by HealthTimeout.
func (s *Set) checkAll(ctx context.Context, probe Probe) {
	var wg sync.WaitGroup
	for _, in := range s.insts {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
			err := probe(cctx, in)
			cancel()
			if ctx.Err() != nil {
				return // stopping: the result says nothing about the instance
			}
			s.recordCheck(in, err)
		})
	}
	wg.Wait()
}

// recordCheck applies one probe result with the healthy/unhealthy thresholds and logs state changes.
func (s *Set) recordCheck(in *Instance, err error) {
	in.mu.Lock()
	in.known = true
	in.lastChecked = s.now()
	var changed, down bool
	if err == nil {
		in.okChecks++
		in.badChecks = 0
		if in.down.Load() && in.okChecks >= s.cfg.HealthyThreshold {
			in.down.Store(false)
			changed = true
		}
	} else {
		in.okChecks = 0
		in.badChecks++
		in.lastErr = err.Error()
		if !in.down.Load() && in.badChecks >= s.cfg.UnhealthyThreshold {
			in.down.Store(true)
			changed, down = true, true
		}
	}
	in.mu.Unlock()
	switch {
	case changed && down:
		s.logger.Warn("instance failing its health check: taken out", slog.String("app", s.app),
			slog.String("upstream", in.addr), slog.String("cause", err.Error()))
	case changed:
		s.logger.Info("instance passing its health check: back in", slog.String("app", s.app), slog.String("upstream", in.addr))
	}
}
