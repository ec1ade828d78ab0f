package upstream

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/internal/suggest"
)

// Config is the behaviour of a Set, read from an app's options by ParseConfig. The zero value is not
// meaningful: start from ParseConfig (with empty options it gives the defaults).
type Config struct {
	// Policy picks an instance: "round_robin" (default), "least_requests", "p2c", "hash" or "first".
	Policy string
	// HashKey is what the hash policy hashes (required for it, unused otherwise).
	HashKey HashKey

	// Retries is how many times a failed attempt may be sent again to another instance (default 2).
	Retries int
	// RetryBudgetPercent caps retries at this share of requests over the budget window (default 20).
	RetryBudgetPercent int
	// RetryBudgetMin is the number of retries per window always allowed on top of the share (default 10).
	RetryBudgetMin int

	// MaxFails consecutive failures eject an instance for FailTimeout (default 1; 0 disables ejection).
	MaxFails int
	// FailTimeout is how long an ejected instance is skipped before one trial request (default 10s).
	FailTimeout time.Duration
	// FailOn5xx counts 5xx responses as failures (for ejection and the breaker), not only connection errors
	// and timeouts (default false).
	FailOn5xx bool

	// HealthPath enables active health checks: each instance gets a GET of this path every HealthInterval,
	// spoken in the app's own protocol (HTTP, uwsgi, SCGI, FastCGI).
	HealthPath string
	// HealthConnect enables connect-only checks instead: an instance passes when a connection to it
	// opens (health_check=connect). It excludes HealthPath; HealthHost and HealthStatus do not apply.
	HealthConnect bool
	// HealthHost is the Host header of a check; empty means the instance's own host (its host:port, or
	// "localhost" for a unix socket). Apps that only answer allowed hosts (Django's ALLOWED_HOSTS) need it.
	HealthHost string
	// HealthInterval is the time between two checks (default 5s).
	HealthInterval time.Duration
	// HealthTimeout bounds one check (default the smaller of 2s and HealthInterval).
	HealthTimeout time.Duration
	// HealthStatus is the set of statuses a check accepts (default 2xx).
	HealthStatus StatusSet
	// HealthyThreshold consecutive passing checks bring an instance back (default 1).
	HealthyThreshold int
	// UnhealthyThreshold consecutive failing checks take an instance out (default 1, so a dead instance
	// receives no traffic for longer than one interval).
	UnhealthyThreshold int

	// Breaker enables a circuit breaker per instance.
	Breaker bool
	// BreakerFailures consecutive failures open the breaker (default 5).
	BreakerFailures int
	// BreakerTimeout is how long an open breaker stays open before going half-open (default 30s).
	BreakerTimeout time.Duration
	// BreakerHalfOpen is how many trial requests a half-open breaker lets through (default 1).
	BreakerHalfOpen int
}

// Active reports whether active health checks run (a health_path, or health_check=connect).
func (c Config) Active() bool { return c.HealthPath != "" || c.HealthConnect }

// Keys are the options ParseConfig reads: what a Set is built from (TestKeysAreWhatParseConfigReads).
var Keys = []string{"lb", "hash_key", "retries", "retry_budget", "retry_budget_min", "max_fails", "fail_timeout",
	"fail_on_5xx", "health_check", "health_path", "health_host", "health_status", "health_interval", "health_timeout",
	"healthy_threshold", "unhealthy_threshold", "breaker", "breaker_failures", "breaker_timeout", "breaker_half_open"}

// Policies lists the accepted values of the lb option.
var Policies = []string{"round_robin", "least_requests", "p2c", "hash", "first"}

// ParseConfig takes the balancing options from o: lb, hash_key, retries, retry_budget, retry_budget_min,
// max_fails, fail_timeout, fail_on_5xx, the HealthOptions, breaker, breaker_failures, breaker_timeout, breaker_half_open.
// Errors name the option and what was expected.
func ParseConfig(o *adapters.Options) (Config, error) {
	var c Config
	var errs []string
	check := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	var err error
	c.Policy = o.String("lb", "round_robin")
	valid := false
	for _, p := range Policies {
		valid = valid || p == c.Policy
	}
	if !valid {
		hint := ""
		if near := suggest.Closest(c.Policy, Policies); near != "" {
			hint = "; did you mean " + near + "?"
		}
		errs = append(errs, fmt.Sprintf("option lb=%q: expected one of %s%s", c.Policy, strings.Join(Policies, ", "), hint))
	}
	if hk := o.String("hash_key", ""); hk != "" || c.Policy == "hash" {
		c.HashKey, err = ParseHashKey(hk)
		check(err)
		if err == nil && c.Policy != "hash" {
			errs = append(errs, "option hash_key only applies to lb=hash")
		}
	}
	c.Retries, err = o.Int("retries", 2, 0, 10)
	check(err)
	c.RetryBudgetPercent, err = o.Int("retry_budget", 20, 0, 1000)
	check(err)
	c.RetryBudgetMin, err = o.Int("retry_budget_min", 10, 0, 1<<20)
	check(err)
	c.MaxFails, err = o.Int("max_fails", 1, 0, 1000)
	check(err)
	c.FailTimeout, err = o.Duration("fail_timeout", 10*time.Second)
	check(err)
	c.FailOn5xx, err = o.Bool("fail_on_5xx", false)
	check(err)
	if err := parseHealth(o, &c); err != nil {
		errs = append(errs, err.Error())
	}

	c.Breaker, err = o.Bool("breaker", false)
	check(err)
	c.BreakerFailures, err = o.Int("breaker_failures", 5, 1, 1<<20)
	check(err)
	c.BreakerTimeout, err = o.Duration("breaker_timeout", 30*time.Second)
	check(err)
	c.BreakerHalfOpen, err = o.Int("breaker_half_open", 1, 1, 1<<16)
	check(err)
	if !c.Breaker {
		for _, k := range []string{"breaker_failures", "breaker_timeout", "breaker_half_open"} {
			if o.Has(k) {
				errs = append(errs, fmt.Sprintf("option %s needs breaker=true", k))
			}
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return c, nil
}

// HealthOptions are the option names ParseHealthConfig takes.
var HealthOptions = []string{"health_path", "health_check", "health_host", "health_interval", "health_timeout", "health_status", "healthy_threshold", "unhealthy_threshold"}

// ParseHealthConfig takes only the active health check options from o (HealthOptions), for kinds that
// reach one instance and do not balance (uwsgi, scgi, fastcgi); the other fields keep ParseConfig's
// defaults with ejection and retries off. health_check is "request" (the default: a GET of health_path
// in the app's protocol) or "connect" (a connection that opens is a pass; no health_path).
func ParseHealthConfig(o *adapters.Options) (Config, error) {
	c, err := ParseConfig(&adapters.Options{})
	if err != nil {
		return c, err
	}
	c.MaxFails, c.Retries = 0, 0
	return c, parseHealth(o, &c)
}

// parseHealth takes the HealthOptions from o into c.
func parseHealth(o *adapters.Options, c *Config) error {
	var errs []string
	check := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	var err error
	c.HealthPath = o.String("health_path", "")
	if c.HealthPath != "" && !strings.HasPrefix(c.HealthPath, "/") {
		errs = append(errs, fmt.Sprintf("option health_path=%q: expected an absolute path such as /healthz", c.HealthPath))
	}
	switch mode := o.String("health_check", ""); mode {
	case "":
	case "request":
		if c.HealthPath == "" {
			errs = append(errs, "option health_check=request needs health_path (the path the check requests)")
		}
	case "connect":
		c.HealthConnect = true
		if c.HealthPath != "" {
			errs = append(errs, "option health_check=connect opens a connection only: drop health_path, or use health_check=request")
		}
	default:
		errs = append(errs, fmt.Sprintf("option health_check=%q: expected request or connect", mode))
	}
	c.HealthHost = o.String("health_host", "")
	if o.Has("health_host") && !validHost(c.HealthHost) {
		errs = append(errs, fmt.Sprintf("option health_host=%q: expected a host name, optionally with :port, such as app.example.com", c.HealthHost))
	}
	c.HealthInterval, err = o.Duration("health_interval", 5*time.Second)
	check(err)
	if err == nil && c.HealthInterval < time.Millisecond {
		errs = append(errs, fmt.Sprintf("option health_interval=%v: expected at least 1ms, such as 5s", c.HealthInterval))
		c.HealthInterval = 5 * time.Second // (so the default timeout below is not a second problem)
	}
	c.HealthTimeout, err = o.Duration("health_timeout", min(2*time.Second, c.HealthInterval))
	check(err)
	if err == nil && c.HealthTimeout <= 0 {
		errs = append(errs, fmt.Sprintf("option health_timeout=%v: expected a positive duration such as 2s", c.HealthTimeout))
	}
	c.HealthStatus, err = ParseStatusSet(o.String("health_status", "2xx"))
	check(err)
	c.HealthyThreshold, err = o.Int("healthy_threshold", 1, 1, 100)
	check(err)
	c.UnhealthyThreshold, err = o.Int("unhealthy_threshold", 1, 1, 100)
	check(err)
	switch {
	case !c.Active():
		for _, k := range []string{"health_host", "health_interval", "health_timeout", "health_status", "healthy_threshold", "unhealthy_threshold"} {
			if o.Has(k) {
				errs = append(errs, fmt.Sprintf("option %s needs health_path (or health_check=connect)", k))
			}
		}
	case c.HealthConnect:
		for _, k := range []string{"health_host", "health_status"} {
			if o.Has(k) {
				errs = append(errs, fmt.Sprintf("option %s applies to requests, not to health_check=connect", k))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// StatusSet is a set of HTTP statuses written as a comma-separated list of codes ("200") and classes
// ("2xx"); the zero value accepts nothing.
type StatusSet struct {
	codes   map[int]bool
	classes [6]bool
}

// ParseStatusSet parses "2xx", "200,204", "2xx,301".
func ParseStatusSet(s string) (StatusSet, error) {
	var set StatusSet
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if len(f) == 3 && f[0] >= '1' && f[0] <= '5' && strings.EqualFold(f[1:], "xx") {
			set.classes[f[0]-'0'] = true
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 100 || n > 599 || len(f) != 3 {
			return StatusSet{}, fmt.Errorf("option health_status=%q: expected statuses such as 200 or classes such as 2xx, separated by commas", s)
		}
		if set.codes == nil {
			set.codes = map[int]bool{}
		}
		set.codes[n] = true
	}
	return set, nil
}

// Match reports whether status is in the set.
func (s StatusSet) Match(status int) bool {
	if status >= 100 && status < 600 && s.classes[status/100] {
		return true
	}
	return s.codes[status]
}

// validHost reports whether s can be a Host header: non-empty, without spaces, controls or the characters
// that end or restructure an authority (a path, query, fragment or user info).
func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte("/?#@\\\"<>{}|^`%", c) >= 0 {
			return false
		}
	}
	return s != ""
}
