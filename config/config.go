// Package config owns the gateway's configuration model and how it is read: built-in defaults, then the
// optional YAML file named by GATEWAY_CONFIG, then the GATEWAY_* environment variables (read with
// github.com/caarlos0/env/v10), each layer overriding only what it sets. It also validates the settings
// without building anything, reporting every problem at once, each naming the variable (or file key), the
// value and what was expected. Every value remembers where it came from (Sources, RouteSpec.Source and
// RouteSpec.Keys), so package plan, which parses the apps, routes and stages, names the same places.
//
// The package reads no process state itself: Load takes the environment as a map, so two configurations
// can be loaded side by side in one process and tests need not touch os.Setenv.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v10"
)

// Config is the whole gateway configuration.
type Config struct {
	Addr              string     `env:"GATEWAY_ADDR" yaml:"addr"`
	Primary           string     `env:"GATEWAY_PRIMARY" yaml:"primary"`
	Delegates         AppList    `env:"GATEWAY_DELEGATES" yaml:"delegates"`
	PassStatus        StatusList `env:"GATEWAY_PASS_STATUS" yaml:"pass_status"`
	Routes            RouteList  `env:"GATEWAY_ROUTES" yaml:"-"`
	TrustedProxies    PrefixList `env:"GATEWAY_TRUSTED_PROXIES" yaml:"trusted_proxies"`
	ConfigFile        string     `env:"GATEWAY_CONFIG" yaml:"-"`
	MaxBodySize       Size       `env:"GATEWAY_MAX_BODY_SIZE" yaml:"max_body_size"`
	MaxHeaderSize     Size       `env:"GATEWAY_MAX_HEADER_SIZE" yaml:"max_header_size"`
	CascadeBodyLimit  Size       `env:"GATEWAY_CASCADE_BODY_LIMIT" yaml:"cascade_body_limit"`
	ReadHeaderTimeout Duration   `env:"GATEWAY_READ_HEADER_TIMEOUT" yaml:"read_header_timeout"`
	IdleTimeout       Duration   `env:"GATEWAY_IDLE_TIMEOUT" yaml:"idle_timeout"`
	UpstreamTimeout   Duration   `env:"GATEWAY_UPSTREAM_TIMEOUT" yaml:"upstream_timeout"`
	ShutdownTimeout   Duration   `env:"GATEWAY_SHUTDOWN_TIMEOUT" yaml:"shutdown_timeout"`
	// BodyTimeout is how long a client may stall in the middle of a request body or while the gateway
	// writes the response to it; 0 turns the limit off.
	BodyTimeout Duration `env:"GATEWAY_BODY_TIMEOUT" yaml:"body_timeout"`
	// IdleParkAfter is how long a keep-alive client connection stays idle in net/http before it is parked
	// (internal/idlepark: no goroutine, no buffers until its next request); 0 turns parking off. Plain
	// HTTP on Linux only: under TLS and on other systems nothing is parked.
	IdleParkAfter Duration `env:"GATEWAY_IDLE_PARK_AFTER" yaml:"idle_park_after"`
	// FastLane turns on the fast lane on the plain-HTTP listener (internal/fastlane, Linux only): a
	// strict HTTP/1.1 front end that serves the requests it proves it handles exactly as net/http would
	// and hands every other connection to net/http. On by default; false leaves every connection to net/http.
	FastLane bool `env:"GATEWAY_FAST_LANE" yaml:"fast_lane"`
	// FastLaneLoops is the number of the fast lane's event loops (one epoll set each, serving the
	// connections whose requests take the express path without a goroutine per connection): 0 means one
	// per GOMAXPROCS, -1 none (every lane connection on a goroutine of its own).
	FastLaneLoops int `env:"GATEWAY_FAST_LANE_LOOPS" yaml:"fast_lane_loops"`
	// UpstreamReadTimeout is how long an app may stall in the middle of its response body before the
	// gateway aborts the response and closes the upstream connection (per app: the read_timeout option);
	// 0 turns the limit off. Upgraded connections (WebSocket) are not subject to it.
	UpstreamReadTimeout Duration `env:"GATEWAY_UPSTREAM_READ_TIMEOUT" yaml:"upstream_read_timeout"`
	// MaxResponseHeaderSize limits the size of an app's response head; a larger one is answered 502.
	MaxResponseHeaderSize Size `env:"GATEWAY_MAX_RESPONSE_HEADER_SIZE" yaml:"max_response_header_size"`
	// MaxConns is the most client connections open at once (0: no limit); past it a new connection is
	// answered 503 and closed (closed without an answer under TLS). Keep it well below the process's
	// file descriptor limit, which also has to hold one upstream connection per proxied request.
	MaxConns int `env:"GATEWAY_MAX_CONNS" yaml:"max_conns"`
	// MaxConnsPerClient is the most connections open at once from one peer IP address (0: no limit, the
	// default: behind a load balancer every connection comes from the balancer's address).
	MaxConnsPerClient int    `env:"GATEWAY_MAX_CONNS_PER_CLIENT" yaml:"max_conns_per_client"`
	LogFormat         string `env:"GATEWAY_LOG_FORMAT" yaml:"log_format"`
	LogLevel          string `env:"GATEWAY_LOG_LEVEL" yaml:"log_level"`
	// AdminAddr is the admin listener (health, readiness, metrics, admin API); "" turns it off. It serves
	// no application traffic and should stay on loopback or a private network.
	AdminAddr string `env:"GATEWAY_ADMIN_ADDR" yaml:"admin_addr"`
	// AdminPprof also serves Go's runtime profiles (net/http/pprof) under /debug/pprof/ on the admin
	// listener. Off by default: a profile exposes internals and costs CPU while it runs. It needs AdminAddr.
	AdminPprof bool `env:"GATEWAY_ADMIN_PPROF" yaml:"admin_pprof"`
	// TLSCert and TLSKey are PEM files (both or neither); when set the gateway serves HTTPS (HTTP/2 and
	// HTTP/1.1) on Addr, and re-reads them on every configuration reload.
	TLSCert string `env:"GATEWAY_TLS_CERT" yaml:"tls_cert"`
	TLSKey  string `env:"GATEWAY_TLS_KEY" yaml:"tls_key"`
	// ACME turns on automatic certificates (package autotls) for the routes' exact host names and
	// ACMENames, from the ACME directory ACMECA, with the contact ACMEEmail, kept in ACMEStorage. A name
	// the static certificate (TLSCert) covers is served from it instead. With ACME on, Addr defaults to
	// :443 and HTTPAddr to :80.
	ACME      bool   `env:"GATEWAY_ACME" yaml:"acme"`
	ACMECA    string `env:"GATEWAY_ACME_CA" yaml:"acme_ca"`
	ACMEEmail string `env:"GATEWAY_ACME_EMAIL" yaml:"acme_email"`
	// ACMEStorage is the directory of the ACME account, certificates and locks; "" is resolved by the
	// binary (its state directory). Gateways sharing it share the certificates.
	ACMEStorage string   `env:"GATEWAY_ACME_STORAGE" yaml:"acme_storage"`
	ACMENames   NameList `env:"GATEWAY_ACME_NAMES" yaml:"acme_names"`
	// ACMECARoot is a PEM file of the roots trusted for the ACME server's HTTPS (a private ACME CA); ""
	// means the system's roots.
	ACMECARoot string `env:"GATEWAY_ACME_CA_ROOT" yaml:"acme_ca_root"`
	// HTTPAddr is the plain HTTP listener next to HTTPS: it answers ACME HTTP-01 challenges and redirects
	// everything else to HTTPS with 308, except routes with https_redirect=false; "" means none.
	HTTPAddr string `env:"GATEWAY_HTTP_ADDR" yaml:"http_addr"`
	// HTTP3 serves HTTP/3 (QUIC, on UDP at Addr's port) next to HTTPS and advertises it with Alt-Svc,
	// whenever TLS is on (a static certificate or ACME); false turns it off.
	HTTP3 bool `env:"GATEWAY_HTTP3" yaml:"http3"`
	// Stage is the migration stage of the primary/delegate pair, the primary being the new app and the
	// first delegate the old one: "legacy", "shadow", "canary?canary=10", "primary" or "retired", optionally
	// with the other migration keys after a '?' (see migration.ParsePairStage); "" means no migration.
	Stage string `env:"GATEWAY_STAGE" yaml:"stage"`
	// Middleware wraps the whole routed handler, inside the front door (Sanitize) and outside every route;
	// first outermost. See MiddlewareList and README.md (Middleware).
	Middleware MiddlewareList `env:"GATEWAY_MIDDLEWARE" yaml:"middleware"`
	// Run lists applications the gateway runs itself, in the compact form (GATEWAY_RUN) or the file's run
	// mapping; routes can declare theirs beside them (RouteSpec.Run). See RunList and docs/run-apps.md.
	Run RunList `env:"GATEWAY_RUN" yaml:"run"`
	// Procfile is a Procfile (NAME: command per line) whose entries run apps may name as their command.
	Procfile string `env:"GATEWAY_PROCFILE" yaml:"procfile"`
	// MiddlewareSource says where Middleware was configured, for error messages.
	MiddlewareSource string `yaml:"-"`
	// Sources says where every setting that is not a built-in default came from, by variable
	// (GATEWAY_PRIMARY); nil when nothing was set. See Name.
	Sources map[string]Source `yaml:"-"`
	// Overrides lists the variables that replaced a key of the file (logged at start and on reload).
	Overrides []Override `yaml:"-"`
	// runUnread names the run apps a GATEWAY_RUN that could not be read declares (its own error says
	// why): an app URL naming one is not reported as naming none.
	runUnread map[string]bool
	// runWritten maps the app strings WithRunAddrs wrote to them as configured (AsConfigured).
	runWritten map[string]string
}

// Defaults returns the built-in configuration.
func Defaults() Config {
	return Config{
		Addr:                  ":8080",
		PassStatus:            StatusList{404},
		MaxHeaderSize:         64 << 10,
		CascadeBodyLimit:      4 << 20,
		ReadHeaderTimeout:     Duration(10 * time.Second),
		IdleTimeout:           Duration(120 * time.Second),
		IdleParkAfter:         Duration(time.Second),
		UpstreamTimeout:       Duration(60 * time.Second),
		ShutdownTimeout:       Duration(30 * time.Second),
		BodyTimeout:           Duration(60 * time.Second),
		UpstreamReadTimeout:   Duration(60 * time.Second),
		MaxResponseHeaderSize: 256 << 10,
		MaxConns:              8192,
		LogFormat:             "text",
		LogLevel:              "info",
		AdminAddr:             "127.0.0.1:9901",
		ACMECA:                LetsEncryptDirectory,
		HTTP3:                 true,
		FastLane:              true,
	}
}

// Variables lists every GATEWAY_* variable the binary reads, in declaration order.
func Variables() []string {
	var out []string
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		if k := t.Field(i).Tag.Get("env"); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// Errors is every problem found in a configuration. Its Error prints one per line.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// Environ turns os.Environ-style "K=V" pairs into a map, keeping only GATEWAY_* variables.
func Environ(pairs []string) map[string]string {
	m := map[string]string{}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "GATEWAY_") {
			m[k] = v
		}
	}
	return m
}

// Load builds the configuration from defaults, the file named by GATEWAY_CONFIG (read with readFile;
// nil means os.ReadFile), and the environment in environ, then validates it. Unknown GATEWAY_* variables
// are errors, so a misspelt name never silently does nothing.
func Load(environ map[string]string, readFile func(string) ([]byte, error)) (Config, error) {
	if readFile == nil {
		readFile = os.ReadFile
	}
	cfg := Defaults()
	var errs Errors

	known := map[string]bool{}
	for _, v := range Variables() {
		known[v] = true
	}
	for k := range environ {
		if strings.HasPrefix(k, "GATEWAY_") && !known[k] {
			errs = append(errs, fmt.Errorf("%s: unknown variable%s (known: %s)", k, suggestVariable(k), strings.Join(Variables(), ", ")))
		}
	}

	var file fileSettings
	if path := environ["GATEWAY_CONFIG"]; path != "" {
		cfg.ConfigFile = path
		data, err := readFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("GATEWAY_CONFIG=%q: cannot read the file: %v", path, err))
		} else {
			var ferrs Errors
			file, ferrs = applyFile(&cfg, path, data)
			errs = append(errs, ferrs...)
			if file.middleware {
				cfg.MiddlewareSource = file.set["GATEWAY_MIDDLEWARE"].String()
			}
			if file.hasRoutes {
				cfg.Routes = file.routes
			}
		}
	}
	for v, s := range file.set {
		cfg.setSource(v, s)
	}
	if file.hasRoutes {
		cfg.setSource("GATEWAY_ROUTES", Source{File: cfg.ConfigFile, Line: file.routesLine, Key: "routes"})
	}

	for i := range cfg.Run {
		if cfg.Run[i].Source == "" { // from the file's run key
			cfg.Run[i].Source = fmt.Sprintf("%s: run.%s", cfg.ConfigFile, cfg.Run[i].Name)
		}
	}
	set, envErrs := applyEnv(&cfg, environ)
	errs = append(errs, envErrs...)
	errs = append(errs, loadProcfile(&cfg, readFile)...)
	for _, v := range set {
		if prev, ok := cfg.Sources[v]; ok && prev.File != "" {
			o := Override{Var: v, File: prev.File, Line: prev.Line, Key: prev.Key}
			if v == "GATEWAY_ROUTES" {
				o.Routes = len(file.routes)
			}
			cfg.Overrides = append(cfg.Overrides, o)
		}
		cfg.setSource(v, Source{Var: v})
	}
	if cfg.ACME { // one setting turns HTTPS on: the standard ports unless set
		if _, set := cfg.Sources["GATEWAY_ADDR"]; !set {
			cfg.Addr = ":443"
		}
		if _, set := cfg.Sources["GATEWAY_HTTP_ADDR"]; !set {
			cfg.HTTPAddr = ":80"
		}
	}
	errs = append(errs, Validate(cfg)...)
	if len(errs) > 0 {
		return cfg, errs
	}
	return cfg, nil
}

// suggestVariable gives "; did you mean GATEWAY_X?" for a misspelt variable name, by the same rules as a
// misspelt file key (case, separators, a prefix, a small edit distance), or "" when none is close.
func suggestVariable(name string) string {
	var keys fileKeys
	for _, v := range Variables() {
		keys.names = append(keys.names, strings.ToLower(v))
	}
	s := suggestKey(name, keys)
	if s == "" {
		return ""
	}
	return "; did you mean " + strings.ReplaceAll(strings.ToUpper(s), " OR ", " or ") + "?"
}

// foldMigrationKeys moves a file route's migration keys into its app options, the form the environment
// uses (GATEWAY_ROUTES='/shop/=http://new:3000?stage=canary&canary=10&old=...'), so both forms are
// validated and built by the same code.
func foldMigrationKeys(r *fileRoute) error {
	set := func(key, val string) error {
		if val == "" && !(key == "shadow_headers" && r.ShadowHeaders != nil) { // shadow_headers: [] means none
			return nil
		}
		if r.Options == nil {
			r.Options = map[string]string{}
		}
		if _, dup := r.Options[key]; dup {
			return fmt.Errorf("%s is given both as a route key and in options", key)
		}
		r.Options[key] = val
		return nil
	}
	canary := ""
	if r.CanaryPercent != nil {
		canary = strconv.FormatFloat(*r.CanaryPercent, 'f', -1, 64)
	}
	negative := ""
	if r.NegativeCache != 0 {
		negative = strconv.Itoa(r.NegativeCache)
	}
	return errors.Join(
		set("old", r.Old), set("stage", r.Stage), set("canary", canary), set("sticky", r.Sticky),
		set("shadow_methods", strings.Join(r.ShadowMethods, ",")), set("shadow_ignore", strings.Join(r.ShadowIgnore, ",")),
		set("shadow_headers", strings.Join(r.ShadowHeaders, ",")), set("negative_cache", negative),
		set("negative_cache_ttl", r.NegativeCacheTTL))
}

// applyEnv parses the environment into a fresh Config and copies over only the variables that are set, so
// an unset variable never overwrites what the file said (caarlos0/env v10 would otherwise apply defaults on
// top of it). It returns the variables it applied, in declaration order.
func applyEnv(cfg *Config, environ map[string]string) ([]string, Errors) {
	var fresh Config
	set := map[string]bool{}
	err := env.ParseWithOptions(&fresh, env.Options{
		Environment: environ,
		OnSet:       func(tag string, _ any, isDefault bool) { set[tag] = !isDefault },
	})
	var errs Errors
	failed := map[string]bool{}
	if err != nil {
		var agg env.AggregateError
		if errors.As(err, &agg) {
			for _, e := range agg.Errors {
				name, cause := describeEnvError(e)
				failed[name] = true
				if name == "GATEWAY_RUN" {
					cfg.runUnread = runNames(environ[name])
				}
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, environ[name], cause))
			}
		} else {
			errs = append(errs, err)
		}
	}
	var applied []string
	dst := reflect.ValueOf(cfg).Elem()
	src := reflect.ValueOf(fresh)
	t := dst.Type()
	for i := 0; i < t.NumField(); i++ {
		key := t.Field(i).Tag.Get("env")
		if _, present := environ[key]; key != "" && present && set[key] && !failed[key] {
			dst.Field(i).Set(src.Field(i))
			applied = append(applied, key)
		}
	}
	if _, present := environ["GATEWAY_MIDDLEWARE"]; present && set["GATEWAY_MIDDLEWARE"] && !failed["GATEWAY_MIDDLEWARE"] {
		cfg.MiddlewareSource = "GATEWAY_MIDDLEWARE"
	}
	for i := range cfg.Routes {
		if cfg.Routes[i].Source == "" {
			cfg.Routes[i].Source = "GATEWAY_ROUTES"
		}
	}
	return applied, errs
}

// setSource records where the setting of variable came from.
func (c *Config) setSource(variable string, s Source) {
	if c.Sources == nil {
		c.Sources = map[string]Source{}
	}
	c.Sources[variable] = s
}

// describeEnvError maps an env v10 error (which names the Go field) back to the variable.
func describeEnvError(e error) (string, error) {
	var pe env.ParseError
	if errors.As(e, &pe) {
		if f, ok := reflect.TypeOf(Config{}).FieldByName(pe.Name); ok {
			// strconv's errors name Go functions ("strconv.ParseInt: parsing ..."): say what is expected.
			var ne *strconv.NumError
			if errors.As(pe.Err, &ne) {
				switch f.Type.Kind() {
				case reflect.Bool:
					return f.Tag.Get("env"), errors.New("expected true or false")
				case reflect.Int, reflect.Int64:
					return f.Tag.Get("env"), errors.New("expected a whole number such as 10")
				}
			}
			return f.Tag.Get("env"), pe.Err
		}
	}
	return "GATEWAY_?", e
}

// validListenAddr reports whether a is host:port with a port net.Listen accepts (a number up to 65535 or a
// service name), so that a port such as 99999 is a configuration error, not a failure to listen.
func validListenAddr(a string) bool {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return false
	}
	_, err = net.LookupPort("tcp", port)
	return err == nil
}

// Validate checks the configuration's settings one by one and against each other, without building or
// parsing anything further, and returns every problem found. The apps, routes and migration stages are
// parsed and checked by package plan, which every build goes through.
func Validate(c Config) Errors {
	var errs Errors
	if !validListenAddr(c.Addr) {
		errs = append(errs, fmt.Errorf("%s=%q: expected host:port with a port from 0 to 65535, such as :8080 or 127.0.0.1:8080", c.Name("GATEWAY_ADDR"), c.Addr))
	}
	if c.Primary != "" && !schemeStart.MatchString(c.Primary) {
		errs = append(errs, fmt.Errorf("%s=%q: expected an app URL such as http://127.0.0.1:8000", c.Name("GATEWAY_PRIMARY"), c.Primary))
	}
	if c.Primary == "" && len(c.Delegates) > 0 {
		errs = append(errs, fmt.Errorf("%s=%q: delegates need a primary: set %s", c.Name("GATEWAY_DELEGATES"), strings.Join(c.Delegates, ","), c.Ref("GATEWAY_PRIMARY", "GATEWAY_DELEGATES")))
	}
	if len(c.PassStatus) == 0 && len(c.Delegates) > 0 {
		errs = append(errs, fmt.Errorf("%s is empty: expected statuses such as 404 that pass a request to the delegates", c.Name("GATEWAY_PASS_STATUS")))
	}
	for _, s := range c.PassStatus {
		if s < 100 || s > 599 {
			errs = append(errs, fmt.Errorf("%s: %d is not an HTTP status", c.Name("GATEWAY_PASS_STATUS"), s))
		}
	}
	errs = append(errs, validateRun(c)...)
	if c.MaxHeaderSize < 1024 || c.MaxHeaderSize > 16<<20 {
		errs = append(errs, fmt.Errorf("%s=%d: expected a size from 1KiB to 16MiB", c.Name("GATEWAY_MAX_HEADER_SIZE"), c.MaxHeaderSize))
	}
	if c.MaxResponseHeaderSize < 1024 || c.MaxResponseHeaderSize > 16<<20 {
		errs = append(errs, fmt.Errorf("%s=%d: expected a size from 1KiB to 16MiB", c.Name("GATEWAY_MAX_RESPONSE_HEADER_SIZE"), c.MaxResponseHeaderSize))
	}
	if c.FastLaneLoops < -1 || c.FastLaneLoops > 1024 {
		errs = append(errs, fmt.Errorf("%s=%d: expected the number of event loops (1 to 1024), 0 for one per CPU the process may use, or -1 for none", c.Name("GATEWAY_FAST_LANE_LOOPS"), c.FastLaneLoops))
	}
	if c.IdleParkAfter < 0 {
		errs = append(errs, fmt.Errorf("%s=%s: expected a duration such as 1s, or 0 to turn idle connection parking off", c.Name("GATEWAY_IDLE_PARK_AFTER"), time.Duration(c.IdleParkAfter)))
	}
	if c.UpstreamReadTimeout < 0 {
		errs = append(errs, fmt.Errorf("%s=%s: expected a duration such as 60s, or 0 for no limit", c.Name("GATEWAY_UPSTREAM_READ_TIMEOUT"), time.Duration(c.UpstreamReadTimeout)))
	}
	if c.MaxBodySize < 0 {
		errs = append(errs, fmt.Errorf("%s=%d: expected a size such as 10MiB, or unlimited", c.Name("GATEWAY_MAX_BODY_SIZE"), c.MaxBodySize))
	}
	for name, d := range map[string]Duration{"GATEWAY_READ_HEADER_TIMEOUT": c.ReadHeaderTimeout, "GATEWAY_UPSTREAM_TIMEOUT": c.UpstreamTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%s: expected a positive duration such as 10s", c.Name(name), time.Duration(d)))
		}
	}
	if c.MaxConns < 0 {
		errs = append(errs, fmt.Errorf("%s=%d: expected a number of connections such as 8192, or 0 for no limit", c.Name("GATEWAY_MAX_CONNS"), c.MaxConns))
	}
	if c.MaxConnsPerClient < 0 {
		errs = append(errs, fmt.Errorf("%s=%d: expected a number of connections such as 256, or 0 for no limit", c.Name("GATEWAY_MAX_CONNS_PER_CLIENT"), c.MaxConnsPerClient))
	} else if c.MaxConns > 0 && c.MaxConnsPerClient > c.MaxConns {
		errs = append(errs, fmt.Errorf("%s=%d: expected at most %s=%d (or 0 for no per-client limit)", c.Name("GATEWAY_MAX_CONNS_PER_CLIENT"), c.MaxConnsPerClient, c.Name("GATEWAY_MAX_CONNS"), c.MaxConns))
	}
	if c.AdminAddr != "" {
		if !validListenAddr(c.AdminAddr) {
			errs = append(errs, fmt.Errorf("%s=%q: expected host:port with a port from 0 to 65535, such as 127.0.0.1:9901, or empty to turn the admin listener off", c.Name("GATEWAY_ADMIN_ADDR"), c.AdminAddr))
		}
	}
	if c.AdminPprof && c.AdminAddr == "" {
		errs = append(errs, fmt.Errorf("%s=true: the profiles are served on the admin listener, but %s is empty (set %s=127.0.0.1:9901, or %s=false)",
			c.Name("GATEWAY_ADMIN_PPROF"), c.Name("GATEWAY_ADMIN_ADDR"), c.Ref("GATEWAY_ADMIN_ADDR", "GATEWAY_ADMIN_PPROF"), c.Ref("GATEWAY_ADMIN_PPROF", "GATEWAY_ADMIN_PPROF")))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, fmt.Errorf("%s=%q, %s=%q: expected both PEM files or neither", c.Name("GATEWAY_TLS_CERT"), c.TLSCert, c.Name("GATEWAY_TLS_KEY"), c.TLSKey))
	}
	errs = append(errs, validateTLS(c)...)
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("%s=%q: expected text or json", c.Name("GATEWAY_LOG_FORMAT"), c.LogFormat))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("%s=%q: expected debug, info, warn or error", c.Name("GATEWAY_LOG_LEVEL"), c.LogLevel))
	}
	return errs
}
