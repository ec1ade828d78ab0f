package middleware

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/cidr"
	"github.com/switchyard/switchyard/internal/suggest"
	"github.com/switchyard/switchyard/internal/units"
)

// Spec is one configured middleware: a name and string parameters. What the names and parameters mean is
// listed in README.md ("Middleware") and on each constructor; Build turns specs into handlers.
type Spec struct {
	Name   string            `yaml:"name"`
	Params map[string]string `yaml:"params"`
}

// String prints the spec in the compact form ParseList reads, with parameters in key order.
func (s Spec) String() string { return FormatList([]Spec{s}) }

// BuildEnv is what a middleware may need besides its parameters.
type BuildEnv struct {
	// TrustedProxies are the peers whose X-Forwarded-For/-Proto are believed (client IP, HSTS).
	TrustedProxies []netip.Prefix
	// Logger receives one line per failure (forward auth unreachable, ...); nil means slog.Default().
	Logger *slog.Logger
	// RoutePrefix is the mount prefix of the route ("/app", no trailing slash; "" at root or for the
	// global chain). prefix_rewrite uses it when given no prefix parameter.
	RoutePrefix string
}

// Build turns specs into one middleware: the first spec is the outermost (sees the request first and the
// response last). It also returns a description of each, in order, for `gateway check`. Every problem is
// reported, each naming the list position, the middleware, the parameter and what was expected. An empty
// list gives the identity.
func Build(specs []Spec, env BuildEnv) (func(http.Handler) http.Handler, []string, error) {
	if env.Logger == nil {
		env.Logger = slog.Default()
	}
	var mws []func(http.Handler) http.Handler
	var desc []string
	var errs []string
	for i, s := range specs {
		p := &params{name: s.Name, m: s.Params, taken: map[string]bool{}}
		mk, ok := builders[strings.ToLower(strings.TrimSpace(s.Name))]
		if !ok {
			hint := ""
			if m := suggest.Closest(s.Name, Names()); m != "" {
				hint = "; did you mean " + m + "?"
			}
			errs = append(errs, fmt.Sprintf("middleware[%d] %q: unknown middleware%s (known: %s)", i, s.Name, hint, strings.Join(Names(), ", ")))
			continue
		}
		mw, err := mk(p, env)
		if err == nil {
			err = p.finish()
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("middleware[%d] %s: %v", i, s.Name, err))
			continue
		}
		mws = append(mws, mw)
		desc = append(desc, Describe(s))
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return Chain(mws...), desc, nil
}

// Chain composes middleware, the first outermost. Chain() is the identity.
func Chain(mws ...func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](h)
		}
		return h
	}
}

type builder func(p *params, env BuildEnv) (func(http.Handler) http.Handler, error)

var builders map[string]builder

func init() {
	builders = map[string]builder{
		"gzip":             buildCompress,
		"compress":         buildCompress,
		"headers":          buildHeaders,
		"redirect":         buildRedirect,
		"rewrite":          buildRewrite,
		"body_limit":       buildBodyLimit,
		"ratelimit":        buildRateLimit,
		"ip_filter":        buildIPFilter,
		"basic_auth":       buildBasicAuth,
		"forward_auth":     buildForwardAuth,
		"cors":             buildCORS,
		"security_headers": buildSecurityHeaders,
		"timeout":          buildTimeout,
		"prefix_rewrite":   buildPrefixRewrite,
	}
}

// Names lists the middleware names Build knows, sorted.
func Names() []string {
	out := make([]string, 0, len(builders))
	for k := range builders {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// secretParams are not shown in descriptions.
var secretParams = map[string]bool{"users": true}

// Describe prints s for the route table and the start log (`gateway check`, /api/routes), with secret
// parameters (a basic_auth's users) shown as "...".
func Describe(s Spec) string {
	c := Spec{Name: s.Name, Params: map[string]string{}}
	for k, v := range s.Params {
		if secretParams[k] {
			v = "..."
		}
		c.Params[k] = v
	}
	return c.String()
}

// params hands a builder its parameters and remembers which were taken, so a misspelt one is an error.
type params struct {
	name  string
	m     map[string]string
	taken map[string]bool
	known []string
}

func (p *params) lookup(key string) (string, bool) {
	p.taken[key] = true
	p.known = append(p.known, key)
	v, ok := p.m[key]
	return strings.TrimSpace(v), ok
}

func (p *params) errf(key, v, expected string) error {
	return fmt.Errorf("parameter %s=%q: expected %s", key, v, expected)
}

func (p *params) String(key, def string) string {
	if v, ok := p.lookup(key); ok {
		return v
	}
	return def
}

// Required returns the parameter or an error naming it.
func (p *params) Required(key, expected string) (string, error) {
	v, ok := p.lookup(key)
	if !ok || v == "" {
		return "", fmt.Errorf("parameter %s is missing: expected %s", key, expected)
	}
	return v, nil
}

func (p *params) Bool(key string, def bool) (bool, error) {
	v, ok := p.lookup(key)
	if !ok || v == "" {
		return def, nil
	}
	b, ok := units.ParseBool(v)
	if !ok {
		return false, p.errf(key, v, "true or false (also yes/no, on/off, 1/0)")
	}
	return b, nil
}

func (p *params) Int(key string, def, min, max int) (int, error) {
	v, ok := p.lookup(key)
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, p.errf(key, v, fmt.Sprintf("an integer from %d to %d", min, max))
	}
	return n, nil
}

func (p *params) Duration(key string, def time.Duration) (time.Duration, error) {
	v, ok := p.lookup(key)
	if !ok || v == "" {
		return def, nil
	}
	d, ok := units.ParseDuration(v)
	if !ok || d == 0 { // every duration a middleware takes is a window or a timeout that cannot be zero
		return 0, p.errf(key, v, "a positive duration such as 30s")
	}
	return d, nil
}

func (p *params) Size(key string, def int64) (int64, error) {
	v, ok := p.lookup(key)
	if !ok || v == "" {
		return def, nil
	}
	n, err := units.ParseSize(v)
	if err != nil || n < 0 {
		return 0, p.errf(key, v, "a size such as 1KiB or 10MB")
	}
	return n, nil
}

// List splits a comma-separated parameter, dropping empty items.
func (p *params) List(key string) []string {
	v, _ := p.lookup(key)
	return splitList(v)
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Prefixes reads a comma-separated list of CIDRs or addresses.
func (p *params) Prefixes(key string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range p.List(key) {
		pr, err := parsePrefix(f)
		if err != nil {
			return nil, p.errf(key, f, "CIDRs or addresses such as 10.0.0.0/8,192.168.1.7")
		}
		out = append(out, pr)
	}
	return out, nil
}

// WithPrefix takes every parameter whose key starts with prefix and returns them by the rest of the key.
func (p *params) WithPrefix(prefix string) map[string]string {
	out := map[string]string{}
	for k, v := range p.m {
		if rest, ok := strings.CutPrefix(k, prefix); ok && rest != "" {
			p.taken[k] = true
			out[rest] = v
		}
	}
	p.known = append(p.known, prefix+"NAME")
	return out
}

func (p *params) finish() error {
	var unknown []string
	for k := range p.m {
		if !p.taken[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	hint := ""
	if len(unknown) == 1 {
		if m := suggest.Closest(unknown[0], p.known); m != "" {
			hint = "; did you mean " + m + "?"
		}
	}
	return fmt.Errorf("unknown parameter %s%s (known: %s)", strings.Join(unknown, ", "), hint, strings.Join(p.known, ", "))
}

func parsePrefix(s string) (netip.Prefix, error) { return cidr.Parse(s) }
