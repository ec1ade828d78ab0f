package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/failure"
)

// Probe checks one instance's health; a nil error means healthy. It must return when ctx is done.
type Probe func(ctx context.Context, in *Instance) error

// Set is the instances of one application and the state that decides which of them gets the next attempt.
// Create it with New; Close stops its health checks.
type Set struct {
	app    string
	insts  []*Instance
	cfg    Config
	policy policy
	budget *Budget
	logger *slog.Logger
	now    func() time.Time
	outage outageLog

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New builds the Set of app (named in log lines) over addrs, in configured order. When cfg.Active(),
// probe is run against every instance every cfg.HealthInterval, first at once, from one goroutine
// that Close stops; probe may be nil otherwise.
func New(app string, addrs []string, cfg Config, probe Probe, logger *slog.Logger) (*Set, error) {
	if len(addrs) == 0 {
		return nil, errors.New("upstream: no instance")
	}
	if cfg.Active() && probe == nil {
		return nil, errors.New("upstream: active health checks need a probe")
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Set{app: app, cfg: cfg, policy: newPolicy(cfg), logger: logger, now: time.Now}
	s.budget = NewBudget(float64(cfg.RetryBudgetPercent)/100, cfg.RetryBudgetMin, nil)
	for i, a := range addrs {
		in := &Instance{addr: a, index: i, hash: mix(hashString(a))}
		if cfg.Breaker {
			in.breaker = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
				Name:        a,
				MaxRequests: uint32(cfg.BreakerHalfOpen),
				Timeout:     cfg.BreakerTimeout,
				ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= uint32(cfg.BreakerFailures) },
				IsExcluded:  func(err error) bool { return errors.Is(err, errExcluded) },
				OnStateChange: func(name string, from, to gobreaker.State) {
					if to == gobreaker.StateOpen {
						in.breakerOpens.Add(1)
					}
					level := slog.LevelWarn // opening, or letting trials through
					if to == gobreaker.StateClosed {
						level = slog.LevelInfo // recovered
					}
					logger.Log(context.Background(), level, "circuit breaker state changed", slog.String("app", app), slog.String("upstream", name),
						slog.String("from", from.String()), slog.String("to", to.String()))
				},
			})
		}
		s.insts = append(s.insts, in)
	}
	if cfg.Active() {
		ctx, cancel := context.WithCancel(context.Background())
		s.stop = cancel
		s.wg.Go(func() { s.runHealth(ctx, probe) })
	}
	return s, nil
}

// Instances returns the instances in configured order.
func (s *Set) Instances() []*Instance { return s.insts }

// Config returns the Set's configuration.
func (s *Set) Config() Config { return s.cfg }

// PicksByRequest says the policy picks an instance by the request (hash): Acquire needs it.
func (s *Set) PicksByRequest() bool {
	_, ok := s.policy.(*hashPolicy)
	return ok
}

// Budget returns the Set's retry budget.
func (s *Set) Budget() *Budget { return s.budget }

// Close stops the health checks and waits for them. It is safe to call more than once.
func (s *Set) Close() error {
	if s.stop != nil {
		s.stop()
		s.wg.Wait()
	}
	return nil
}

// NoInstanceError is returned by Acquire when no instance may be tried: every one is failing its health
// check, ejected, behind an open circuit breaker, or was already tried for this request. A transport
// answers it with 503.
type NoInstanceError struct {
	// Total is the number of instances; the other fields count why each was skipped.
	Total, Down, Ejected, Open, Tried int
	set                               *Set
}

// LogLine says whether the 503 that answers this error is logged, and how many were not since the
// last one that was: the first of an outage, then one every 10 s while it lasts (failure.Answer).
func (e *NoInstanceError) LogLine() (bool, int) {
	if e.set == nil {
		return true, 0
	}
	return e.set.outage.line(e.set.now())
}

// Is makes a NoInstanceError match failure.ErrNoInstance (503).
func (e *NoInstanceError) Is(target error) bool { return target == failure.ErrNoInstance }

func (e *NoInstanceError) Error() string {
	var why []string
	for _, c := range []struct {
		n    int
		text string
	}{{e.Down, "failing the health check"}, {e.Ejected, "ejected after failures"}, {e.Open, "circuit breaker open"}, {e.Tried, "already tried"}} {
		if c.n > 0 {
			why = append(why, fmt.Sprintf("%d %s", c.n, c.text))
		}
	}
	return fmt.Sprintf("no available instance (of %d: %s)", e.Total, strings.Join(why, ", "))
}

// Attempt is one use of one instance. The caller must call Done exactly once.
type Attempt struct {
	Instance *Instance
	set      *Set
	trial    bool
	breaker  func(error)
}

// Acquire picks an instance for r among those not in tried, following the policy, and counts it in
// flight. It returns a *NoInstanceError when none may be tried.
func (s *Set) Acquire(r *http.Request, tried []*Instance) (*Attempt, error) {
	now := s.now().UnixNano()
	var buf [8]*Instance
	cands := buf[:0]
	var nie NoInstanceError // counted here, allocated only when returned
	for _, in := range s.insts {
		if containsInstance(tried, in) {
			nie.Tried++
			continue
		}
		switch in.state(now) {
		case available:
			cands = append(cands, in)
		case reasonDown:
			nie.Down++
		case reasonEjected:
			nie.Ejected++
		case reasonOpen:
			nie.Open++
		}
	}
	for len(cands) > 0 {
		in := cands[0]
		if len(cands) > 1 {
			in = s.policy.pick(r, cands)
		}
		if a, why := s.claim(in, now); a != nil {
			if skipped, ended := s.outage.end(); ended {
				s.logger.Info("an instance is available again", slog.String("app", s.app), slog.String("upstream", in.addr),
					slog.Int("not_logged_since", skipped))
			}
			return a, nil
		} else if why == reasonEjected {
			nie.Ejected++
		} else {
			nie.Open++
		}
		cands = removeInstance(cands, in)
	}
	out := nie
	out.Total, out.set = len(s.insts), s
	return nil, &out
}

// Revive puts instance i back in service at once: its process was restarted and is ready (the run apps'
// supervisor knows it before any attempt could show it). Its ejection ends and its consecutive failures
// are forgotten; its active health check and its breaker judge it again on their own schedule.
func (s *Set) Revive(i int) {
	in := s.insts[i]
	in.mu.Lock()
	in.fails = 0
	in.mu.Unlock()
	if in.ejectedUntil.Swap(0) != 0 {
		s.logger.Info("instance back after its restart", slog.String("app", s.app), slog.String("upstream", in.addr))
	}
}

// claim takes in's half-open trial slot (after an ejection) and breaker permission, if either applies.
func (s *Set) claim(in *Instance, now int64) (*Attempt, reason) {
	a := &Attempt{Instance: in, set: s}
	if until := in.ejectedUntil.Load(); until != 0 {
		if now < until || !in.trial.CompareAndSwap(false, true) {
			return nil, reasonEjected
		}
		a.trial = true
	}
	if in.breaker != nil {
		done, err := in.breaker.Allow()
		if err != nil {
			if a.trial {
				in.trial.Store(false)
			}
			return nil, reasonOpen
		}
		a.breaker = done
	}
	in.inflight.Add(1)
	return a, available
}

// errExcluded marks an outcome the breaker must not count (the client went away).
var errExcluded = errors.New("upstream: outcome excluded")

// errFailed is what the breaker is told for a counted failure.
var errFailed = errors.New("upstream: attempt failed")

// Done reports the attempt's outcome: err from the transport (nil if a response header arrived) and the
// response status. Connection errors and timeouts, and 5xx when the Set counts them, are failures; an
// attempt cancelled by the client counts as nothing.
func (a *Attempt) Done(ctx context.Context, err error, status int) {
	in, s := a.Instance, a.set
	in.inflight.Add(-1)
	failed := err != nil || (s.cfg.FailOn5xx && status >= 500)
	excluded := err != nil && ctx.Err() != nil
	if a.breaker != nil {
		switch {
		case excluded:
			a.breaker(errExcluded)
		case failed:
			a.breaker(errFailed)
		default:
			a.breaker(nil)
		}
	}
	if excluded {
		if a.trial {
			in.trial.Store(false)
		}
		return
	}
	in.mu.Lock()
	in.known = true
	if !failed {
		in.fails = 0
		in.mu.Unlock()
		if in.ejectedUntil.Swap(0) != 0 {
			s.logger.Info("instance back after ejection", slog.String("app", s.app), slog.String("upstream", in.addr))
		}
		if a.trial {
			in.trial.Store(false)
		}
		return
	}
	in.fails++
	if err != nil {
		in.lastErr = err.Error()
	} else {
		in.lastErr = fmt.Sprintf("status %d", status)
	}
	eject := s.cfg.MaxFails > 0 && in.fails >= s.cfg.MaxFails && len(s.insts) > 1
	fails, cause := in.fails, in.lastErr
	in.mu.Unlock()
	if eject {
		// Counted once per ejection: failures of attempts that were in flight when the instance was ejected
		// extend it; a failed half-open trial starts a new one.
		// Logged once too: under load many attempts fail together, and each would say the same.
		if in.ejectedUntil.Swap(s.now().Add(s.cfg.FailTimeout).UnixNano()) == 0 || a.trial {
			in.ejections.Add(1)
			s.logger.Warn("instance ejected", slog.String("app", s.app), slog.String("upstream", in.addr),
				slog.Int("consecutive_failures", fails), slog.Duration("for", s.cfg.FailTimeout), slog.String("cause", cause))
		}
	}
	if a.trial {
		in.trial.Store(false)
	}
}

// Health reports every instance's state, in configured order.
func (s *Set) Health() []adapters.InstanceHealth {
	now := s.now()
	out := make([]adapters.InstanceHealth, 0, len(s.insts))
	for _, in := range s.insts {
		in.mu.Lock()
		h := adapters.InstanceHealth{
			Address:             in.addr,
			Known:               in.known,
			InFlight:            in.inflight.Load(),
			ConsecutiveFailures: max(in.fails, in.badChecks),
			LastChecked:         in.lastChecked,
			LastError:           in.lastErr,

			Retries:              in.retries.Load(),
			RetryBudgetExhausted: in.retryRefused.Load(),
			Ejections:            in.ejections.Load(),
			BreakerOpens:         in.breakerOpens.Load(),
		}
		in.mu.Unlock()
		st := in.state(now.UnixNano())
		h.Healthy = st == available || st == reasonEjected && in.ejectedUntil.Load() <= now.UnixNano()
		if !h.Healthy {
			h.Unavailable = st.String()
		}
		out = append(out, h)
	}
	return out
}

func containsInstance(list []*Instance, in *Instance) bool {
	for _, x := range list {
		if x == in {
			return true
		}
	}
	return false
}

func removeInstance(list []*Instance, in *Instance) []*Instance {
	for i, x := range list {
		if x == in {
			return append(list[:i], list[i+1:]...)
		}
	}
	return list
}
