// Package adapters owns the application registry: the table that turns an APP URL such as
// http://127.0.0.1:8000, unix:///run/app.sock, fastcgi://127.0.0.1:9000 or status:403 into an http.Handler,
// and the per-app options that ride in the URL's query.
//
// Each backend kind lives in its own sub-package (adapters/httpproxy, adapters/fastcgi, ...) and contributes a
// Kind; adapters/builtin assembles the registry the gateway uses. A Registry is plain data owned by its
// caller: two gateways in one process can hold two registries that never see each other.
package adapters

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Target is everything a Factory needs to build one application.
type Target struct {
	// Raw is the APP string as configured, kept for error messages and the route table.
	Raw string
	// URL is Raw parsed, with the query (the options) removed.
	URL *url.URL
	// Options are the per-app options from Raw's query. A Factory takes the keys it understands; keys nobody
	// took make Build fail, so a misspelt option is an error rather than silently ignored.
	Options *Options
	// Mount is the path prefix the app is mounted under, without a trailing slash ("" for an app mounted at
	// the root: the primary, delegates and "/" routes). Kinds that are MountAware use it as SCRIPT_NAME.
	Mount string
	// Logger receives the app's error lines; never nil when built by a Registry.
	Logger *slog.Logger
	// DefaultTimeout is the gateway-wide upstream timeout (GATEWAY_UPSTREAM_TIMEOUT) that a kind's own
	// timeout option defaults to; 0 means the kind's built-in default.
	DefaultTimeout time.Duration
}

// Factory builds the handler for one application. The returned handler owns any connection pool it opens;
// if it also implements io.Closer, Close releases them when the configuration it belongs to is retired.
type Factory func(t Target) (http.Handler, error)

// Kind describes one backend kind.
type Kind struct {
	// Schemes are the URL schemes this kind answers to, lowercase ("fastcgi", "fastcgi+unix").
	Schemes []string
	// Factory builds one application of this kind.
	Factory Factory
	// MountAware kinds receive the full request path and split it themselves into SCRIPT_NAME (the mount)
	// and PATH_INFO, as a WSGI or CGI server mounting the app would. The router never strips their prefix.
	MountAware bool
	// Summary is a one-line description for `gateway check` and error messages.
	Summary string
}

// Registry maps URL schemes to kinds. The zero value is not usable: call NewRegistry.
type Registry struct {
	kinds  map[string]Kind
	logger *slog.Logger
}

// NewRegistry returns an empty registry whose apps log through logger (slog.Default() when nil).
func NewRegistry(logger *slog.Logger) *Registry {
	if logger == nil {
		logger = slog.Default()
	}
	return &Registry{kinds: make(map[string]Kind), logger: logger}
}

// Register adds a kind. Registering a scheme twice is an error, so one kind cannot silently shadow another.
func (r *Registry) Register(k Kind) error {
	if k.Factory == nil || len(k.Schemes) == 0 {
		return fmt.Errorf("adapters: kind %q needs a factory and at least one scheme", k.Summary)
	}
	for _, s := range k.Schemes {
		if s != strings.ToLower(s) {
			return fmt.Errorf("adapters: scheme %q must be lowercase", s)
		}
		if _, dup := r.kinds[s]; dup {
			return fmt.Errorf("adapters: scheme %q is already registered", s)
		}
	}
	for _, s := range k.Schemes {
		r.kinds[s] = k
	}
	return nil
}

// MustRegister is Register for program start-up, where a duplicate scheme is a programming error.
func (r *Registry) MustRegister(k Kind) {
	if err := r.Register(k); err != nil {
		panic(err)
	}
}

// Schemes lists the registered schemes, sorted.
func (r *Registry) Schemes() []string {
	out := make([]string, 0, len(r.kinds))
	for s := range r.kinds {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the kind registered for scheme.
func (r *Registry) Lookup(scheme string) (Kind, bool) {
	k, ok := r.kinds[strings.ToLower(scheme)]
	return k, ok
}

// Parse splits an APP string into its URL and options and finds its kind, without building anything.
// The error names the value and what was expected.
func (r *Registry) Parse(raw string) (Target, Kind, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return Target{}, Kind{}, fmt.Errorf("app %q is not a URL: %v", raw, err)
	}
	if u.Scheme == "" {
		return Target{}, Kind{}, fmt.Errorf("app %q has no scheme: expected one of %s", raw, strings.Join(r.Schemes(), ", "))
	}
	k, ok := r.Lookup(u.Scheme)
	if !ok {
		return Target{}, Kind{}, fmt.Errorf("app %q: unknown scheme %q, expected one of %s", raw, u.Scheme, strings.Join(r.Schemes(), ", "))
	}
	opts, err := ParseOptions(u.RawQuery)
	if err != nil {
		return Target{}, Kind{}, fmt.Errorf("app %q: %v", raw, err)
	}
	u.RawQuery = ""
	u.ForceQuery = false
	return Target{Raw: raw, URL: u, Options: opts, Logger: r.logger}, k, nil
}

// Build constructs the app described by t (as returned by Parse, possibly with Mount set and some options
// already taken by the caller). It fails if the factory fails or if any option was left untaken.
func (r *Registry) Build(t Target) (h http.Handler, err error) {
	k, ok := r.Lookup(t.URL.Scheme)
	if !ok {
		return nil, fmt.Errorf("app %q: unknown scheme %q, expected one of %s", t.Raw, t.URL.Scheme, strings.Join(r.Schemes(), ", "))
	}
	if t.Options == nil {
		t.Options = &Options{}
	}
	if t.Logger == nil {
		t.Logger = r.logger
	}
	defer func() {
		// A factory that panics on odd input must not take the process down at start-up or reload.
		if p := recover(); p != nil {
			h, err = nil, fmt.Errorf("app %q: %v", t.Raw, p)
		}
	}()
	h, err = k.Factory(t)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", t.Raw, err)
	}
	if left := t.Options.Unused(); len(left) > 0 {
		if c, ok := h.(interface{ Close() error }); ok {
			_ = c.Close()
		}
		return nil, fmt.Errorf("app %q: unknown option %q for %s apps", t.Raw, left[0], t.URL.Scheme)
	}
	return h, nil
}
