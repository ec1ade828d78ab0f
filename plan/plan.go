// Package plan owns the typed form of a gateway's configuration: what config.Load read, parsed once into
// the apps (the primary, the delegates, each route's app and old app, with their kind, label and the
// options the gateway itself reads) and the routes (parsed pattern and host, strip_prefix, cascade,
// encoded_slash, https_redirect, prefix_header, migration stage, middleware), each remembering where it
// was configured: a variable, or a file and line.
//
// Parse reports every problem at once, each once and in one wording, naming the variable or the file
// line of the very key at fault (a route option's own line, not its route's). Package gateway assembles
// the handlers from a Plan, and `gateway check` and the admin API's /api/routes print its Table. Nothing
// is built, started or dialled here: the options only an app's kind reads (a timeout, a pool size) are
// checked when adapters.Registry.Build builds it, and middleware parameters when middleware.Build does.
package plan

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/upstream"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/migration"
	"github.com/switchyard/switchyard/router"
)

// Role says where an app sits in the configuration, which decides the options it takes.
type Role int

const (
	RolePrimary  Role = iota
	RoleDelegate      // a delegate: tried in order when the app before it answered a pass status
	RoleRoute         // a route's APP: takes the route options (stage, cascade, strip_prefix, ...)
	RoleOld           // the old app of a migrating route: sees the client's path unless asked otherwise
)

// App is one application as configured.
type App struct {
	Role Role
	// Source names where the app was configured: "GATEWAY_PRIMARY", "GATEWAY_DELEGATES[1]",
	// "gw.yaml:9: routes[0]: route /shop/", with " (old)" after an old app's route.
	Source string
	// Target is the app ready for adapters.Registry.Build: options parsed, those the gateway reads taken
	// (so Build refuses only keys nobody reads), the route's mount resolved, the gateway-wide timeouts and
	// limits set. Its Options remember what was taken: build it once.
	Target adapters.Target
	Kind   adapters.Kind
	// Name is the app's label (Target.Name); ID identifies it as configured, for the keys that decide
	// whether a route's migration numbers carry over a reload (its label, instances and options without
	// the migration keys).
	Name, ID string
	// Addr is where the app is reached, without options (scheme and host lowercase); ScriptName is the
	// SCRIPT_NAME a mount-aware app gets.
	Addr, ScriptName string
	// PassHeader is the pass_header option in canonical form, "" when not set.
	PassHeader string
	// Unready is the ready=false option: the app's health never makes /readyz fail.
	Unready bool
	// Strip is strip_prefix (explicit, or implied by prefix_header=x-forwarded-prefix) of a route's app
	// or old app; ScriptNameHeader is prefix_header=script_name.
	Strip, ScriptNameHeader bool

	where func(key string) string
}

// Where names the place the app's option key was configured, for a problem with it: the key's own file
// line for a route of the YAML file, else the app's Source.
func (a App) Where(key string) string {
	if a.where == nil {
		return a.Source
	}
	return a.where(key)
}

// Locate puts in front of err, an error about the app as adapters.Registry.Build words it ("app
// "...": option timeout=..."), where the option it names was configured.
func (a App) Locate(err error) error {
	return fmt.Errorf("%s: %s", a.Where(optionKey(err.Error())), oneLine(err))
}

// Route is one PATTERN=APP mount.
type Route struct {
	Pattern router.Pattern
	// Source is where the route was configured ("GATEWAY_ROUTES", "gw.yaml:9: routes[0]").
	Source string
	// App is the route's app; Old the old app of a migration (nil when the stage has none, or there is
	// no stage).
	App App
	Old *App
	// Cascade is cascade=true: what the route's app answers with a pass status goes on to the primary and
	// the delegates.
	Cascade bool
	// EncodedSlash is encoded_slash=true (router.Route.EncodedSlash); PlainHTTP is https_redirect=false:
	// the plain HTTP listener serves the route too.
	EncodedSlash, PlainHTTP bool
	// Stage is the route's migration (the stage, old and the other migration keys); its Stage is
	// migration.StageNone for a route that does not migrate.
	Stage migration.Spec
	// Middleware wraps the route's app, first outermost; MiddlewareSource is where it was configured.
	Middleware       []middleware.Spec
	MiddlewareSource string
}

// Host is the route's host: "" for any host, an exact host, or "*.example.com".
func (r Route) Host() string { return r.Pattern.Host }

// Mount is the path mount-aware apps get as SCRIPT_NAME: the prefix, "" for a route at the root.
func (r Route) Mount() string {
	if r.Pattern.Prefix == "/" {
		return ""
	}
	return r.Pattern.Prefix
}

// Plan is a configuration parsed for assembly.
type Plan struct {
	// Chain is the fall-through chain: the primary, then the delegates in order.
	Chain []App
	// HasPrimary says Chain[0] is the primary (false when none is configured or it did not parse).
	HasPrimary bool
	// Stage is the primary/delegate pair's migration (GATEWAY_STAGE), the primary being the new app and
	// Chain[1] the old one; its Stage is migration.StageNone when the pair does not migrate.
	Stage migration.Spec
	// StageSource names GATEWAY_STAGE as configured (the variable, or the file line).
	StageSource string
	// Routes are the routes in configured order.
	Routes []Route
	// Middleware wraps every route (GATEWAY_MIDDLEWARE), first outermost; MiddlewareSource is where it was
	// configured.
	Middleware       []middleware.Spec
	MiddlewareSource string
	// Warnings are valid but probably unintended settings, one sentence each naming where.
	Warnings []string

	acmeNames []string
}

// Parse parses cfg (as config.Load returned it, run apps' addresses filled in) with the kinds of reg.
// The error is a config.Errors of every problem found; the Plan is then partial (what parsed), so a
// caller may report what later steps find in it too, but must not serve it.
func Parse(cfg config.Config, reg *adapters.Registry) (*Plan, error) {
	ps := &parser{cfg: cfg, reg: reg, p: &Plan{acmeNames: cfg.ACMENames}}
	ps.p.Warnings = append(tinySizeWarnings(cfg), fastLaneWarnings(cfg)...)
	ps.chain()
	ps.routes()
	ps.sharedLabels()
	ps.middleware()
	ps.acme()
	if len(ps.errs) > 0 {
		return ps.p, ps.errs
	}
	return ps.p, nil
}

// sharedLabels finds two apps under one label that keep the state of the same instances (several
// instances, health checks or a breaker: an upstream.Set each) by other rules: the per-instance metrics
// and /api/upstreams report an app's instances once by label, and would show one app's health, ejections
// and breakers for the other's. (The same app on two routes with other route options, strip_prefix say,
// balances by the same rules: reported once, it is reported right.)
func (ps *parser) sharedLabels() {
	balanced := func(a App) bool {
		o := a.Target.Options
		return len(a.Target.Instances) > 1 || o.Has("health_path") || o.Has("health_check") || o.Has("breaker")
	}
	first := map[string]App{}
	for _, a := range ps.allApps() {
		if !balanced(a) {
			continue
		}
		prev, seen := first[a.Name]
		if !seen {
			first[a.Name] = a
			continue
		}
		if balanceRules(prev) != balanceRules(a) {
			ps.errorf("%s: app %q has the label %q of the app of %s, with other instances or balancing options: the metrics and /api/upstreams would show one's instance health for the other's; give each its own name= option (such as name=%s)",
				a.Source, a.Target.Raw, a.Name, prev.Source, suggestLabel(a.Source))
		}
	}
}

// allApps is every app of the plan: the chain's, then each route's and its old app.
func (ps *parser) allApps() []App {
	out := append([]App(nil), ps.p.Chain...)
	for _, r := range ps.p.Routes {
		out = append(out, r.App)
		if r.Old != nil {
			out = append(out, *r.Old)
		}
	}
	return out
}

// balanceRules is a's instances and balancing options, as one comparable string (read without taking
// them: the app's kind still refuses those it does not read).
func balanceRules(a App) string {
	q, _ := url.ParseQuery(a.Target.Options.Encode())
	var b strings.Builder
	for _, u := range a.Target.Instances {
		b.WriteString(u.String() + "|")
	}
	for _, k := range upstream.Keys {
		b.WriteString("&" + k + "=" + strings.Join(q[k], ","))
	}
	return b.String()
}

// suggestLabel makes a label from where an app was configured: a route's pattern, without slashes.
func suggestLabel(source string) string {
	_, pattern, ok := strings.Cut(source, "route ")
	if !ok {
		return "primary"
	}
	pattern, _, _ = strings.Cut(pattern, " ")
	label := strings.Trim(strings.NewReplacer("/", "-", "*", "").Replace(pattern), "-")
	if label == "" {
		return "root"
	}
	return label
}

// parser holds a parse in progress.
type parser struct {
	cfg  config.Config
	reg  *adapters.Registry
	p    *Plan
	errs config.Errors
	// patternErrors says some route pattern did not parse (the names ACME would get are then unknown).
	patternErrors bool
}

func (ps *parser) errorf(format string, a ...any) {
	ps.errs = append(ps.errs, fmt.Errorf(format, a...))
}

func (ps *parser) warn(w ...string) { ps.p.Warnings = append(ps.p.Warnings, w...) }

// chain parses the primary, the delegates and the pair's stage.
func (ps *parser) chain() {
	cfg := ps.cfg
	if cfg.Primary != "" {
		src := cfg.Name("GATEWAY_PRIMARY")
		if a, ok := ps.app(RolePrimary, cfg.Primary, "", func(string) string { return src }); ok {
			ps.p.Chain = append(ps.p.Chain, a)
			ps.p.HasPrimary = true
		}
	}
	delegatesOK := true
	for i, d := range cfg.Delegates {
		src := fmt.Sprintf("%s[%d]", cfg.Name("GATEWAY_DELEGATES"), i)
		a, ok := ps.app(RoleDelegate, d, "", func(string) string { return src })
		if !ok {
			delegatesOK = false
			continue
		}
		ps.p.Chain = append(ps.p.Chain, a)
	}
	where := cfg.Name("GATEWAY_STAGE")
	ps.p.StageSource = where
	spec, err := migration.ParsePairStage(cfg.Stage)
	if len(ps.p.Chain) > 0 {
		ps.warn(ignoredStageKeys(where, spec)...)
	}
	chain := ps.p.Chain
	switch {
	case err != nil:
		ps.errorf("%s=%q: %s", where, cfg.Stage, oneLine(err))
	case spec.Stage == migration.StageNone:
	case cfg.Primary == "" || len(cfg.Delegates) == 0:
		ps.errorf("%s=%q: a stage needs %s (the new app) and %s (the first is the old app)", where, cfg.Stage, cfg.Ref("GATEWAY_PRIMARY", "GATEWAY_STAGE"), cfg.Ref("GATEWAY_DELEGATES", "GATEWAY_STAGE"))
	case !ps.p.HasPrimary || !delegatesOK: // their own errors are reported
	case chain[0].Name == chain[1].Name:
		ps.errorf("%s=%q: the primary (the new app) and the first delegate (the old app) are both named %q: give one a name= option so the report can tell them apart", where, cfg.Stage, chain[0].Name)
	default:
		ps.p.Stage = spec
	}
}

// routes parses every route.
func (ps *parser) routes() {
	seen := map[router.Pattern]config.RouteSpec{}
	roots := ps.p.Chain
	for _, rs := range ps.cfg.Routes {
		p, err := router.ParsePattern(rs.Pattern)
		if err != nil {
			ps.errorf("%s: %v", rs.Where("pattern"), err)
			ps.patternErrors = true
			continue
		}
		if prev, dup := seen[p]; dup {
			ps.errorf("%s: route %q repeats pattern %s of %s", rs.Where("pattern"), rs.String(), p, prev.String())
			continue
		}
		seen[p] = rs
		if w := singleLabelHostWarning(rs.Where("pattern"), rs.Pattern, p); w != "" {
			ps.warn(w)
		}
		r := Route{Pattern: p, Source: rs.Source, Middleware: rs.Middleware, MiddlewareSource: rs.Where("middleware") + ": route " + p.String()}
		// Errors name the route, not only where it was configured.
		where := func(key string) string { return rs.Where(key) + ": route " + p.String() }
		a, ok := ps.app(RoleRoute, rs.App, r.Mount(), where)
		if !ok {
			continue
		}
		r.App = a
		var bad bool
		r.Stage, bad = ps.stage(rs, p, a.Target.Options)
		r.Cascade = ps.boolOption(a, "cascade", false, &bad)
		r.EncodedSlash = ps.boolOption(a, EncodedSlashOption, false, &bad)
		r.PlainHTTP = !ps.boolOption(a, HTTPSRedirectOption, true, &bad)
		if r.PlainHTTP && ps.cfg.HTTPAddr == "" {
			ps.errs = append(ps.errs, a.fail(fmt.Errorf("option %s=false: there is no plain HTTP listener (GATEWAY_HTTP_ADDR) to serve the route on", HTTPSRedirectOption), HTTPSRedirectOption))
			bad = true
		}
		oldWhere := func(string) string { return rs.Where("old") + ": route " + p.String() + " (old)" }
		if bad {
			// The old app's own problems (its URL, its options) belong in the same report: without this
			// a bad canary_percent would hide an old app with an unknown scheme until it was fixed.
			if raw := a.Target.Options.String(migration.KeyOld, ""); raw != "" {
				ps.app(RoleOld, raw, r.Mount(), oldWhere)
			}
			continue
		}
		ps.warn(sharedAddressWarnings(rs.Source, p.String(), "", a, roots)...)
		ps.warn(ignoredStageKeys(rs.Source+": route "+p.String(), r.Stage)...)
		if r.Stage.Stage != migration.StageNone && r.Stage.Old != "" {
			old, ok := ps.app(RoleOld, r.Stage.Old, r.Mount(), oldWhere)
			if !ok {
				continue
			}
			if old.Name == a.Name {
				ps.errorf("%s: route %s: the new app and the old app are both named %q: give one a name= option so the report can tell them apart", rs.Source, p, a.Name)
				continue
			}
			ps.warn(sharedAddressWarnings(rs.Source, p.String(), "old ", old, roots)...)
			r.Old = &old
		}
		if r.Stage.Stage == migration.StageNone && r.Cascade && len(ps.p.Chain) == 0 {
			ps.warn(fmt.Sprintf("%s: route %s: cascade=true but there is no primary or delegate to fall through to: the route's own answers are final", rs.Source, p))
		}
		ps.p.Routes = append(ps.p.Routes, r)
	}
}

// boolOption takes a route option of a, reporting a bad value where it was configured.
func (ps *parser) boolOption(a App, key string, def bool, bad *bool) bool {
	v, err := a.Target.Options.Bool(key, def)
	if err != nil {
		ps.errs = append(ps.errs, a.fail(err, key))
		*bad = true
	}
	return v
}

// fileMigrationWords puts the file's name of a migration key where the environment form's name stands in
// the migration package's errors: a file route says canary_percent, folded into canary.
var fileMigrationWords = strings.NewReplacer(
	migration.KeyCanary+"=", "canary_percent=",
	migration.KeyCanary+" applies", "canary_percent applies",
	"needs "+migration.KeyCanary+",", "needs canary_percent,",
)

// stage parses the migration keys of a route's app options (o); bad says a problem was reported. Each problem is reported on its own, at
// the line of the key it names, in the file's words for a file route.
func (ps *parser) stage(rs config.RouteSpec, p router.Pattern, o *adapters.Options) (_ migration.Spec, bad bool) {
	spec, err := migration.ParseSpec(func(k string) (string, bool) { return o.String(k, ""), o.Has(k) }, false)
	if err == nil {
		return spec, false
	}
	for _, e := range split(err) {
		msg := oneLine(e)
		key := optionKey(msg)
		if rs.FromFile() {
			msg = fileMigrationWords.Replace(msg)
		}
		ps.errorf("%s: route %s: %s", rs.Where(key), p, msg)
	}
	return migration.Spec{}, true
}

// app parses one app. where names, by option key, where a problem with the app was configured; key ""
// names the app itself. ok is false when a problem was reported.
func (ps *parser) app(role Role, raw, mount string, where func(key string) string) (_ App, ok bool) {
	cfg := ps.cfg
	t, kind, err := ps.reg.Parse(raw)
	if err != nil {
		ps.errorf("%s: %v", where(""), err)
		return App{}, false
	}
	a := App{Role: role, Source: where(""), Kind: kind, Name: t.Name, ID: appIdentity(t), where: where}
	ps.warn(processEnvParamWarnings(a.Source, raw, t.URL.Scheme, t.Options)...)
	t.Mount = mount
	// The old app of a migrating route gets the request as it did before the route existed: a
	// mount-aware one sees the whole path (unless its script_name option says otherwise).
	t.FullPath = role == RoleOld
	t.DefaultTimeout = time.Duration(cfg.UpstreamTimeout)
	t.ReadTimeout = time.Duration(cfg.UpstreamReadTimeout)
	if t.ReadTimeout == 0 {
		t.ReadTimeout = -1 // configured off, not "the kind's default"
	}
	t.MaxResponseHeaderBytes = int64(cfg.MaxResponseHeaderSize)
	a.Target = t
	before := len(ps.errs)
	fail := func(err error, key string) { ps.errs = append(ps.errs, a.fail(err, key)) }
	if a.PassHeader, err = passHeaderOption(t.Options); err != nil {
		fail(err, PassHeaderOption)
	}
	ready, err := t.Options.Bool("ready", true)
	if err != nil {
		fail(err, "ready")
	}
	a.Unready = !ready
	if role != RoleRoute && role != RoleOld {
		switch {
		case t.Options.Has(HTTPSRedirectOption):
			fail(fmt.Errorf("option %s applies to routes: mount the app on a route to keep it on plain HTTP (/=APP?%s=false takes every path no other route claims)", HTTPSRedirectOption, HTTPSRedirectOption), HTTPSRedirectOption)
		case t.Options.Has(EncodedSlashOption):
			fail(fmt.Errorf("option %s applies to routes, whose table decides where an encoded slash may go: mount the app on a route instead (/=APP?%s=true takes every path no longer route claims)", EncodedSlashOption, EncodedSlashOption), EncodedSlashOption)
		case t.Options.Has(PrefixHeaderOption):
			fail(fmt.Errorf("option %s applies to routes: an app at the root has no prefix to announce", PrefixHeaderOption), PrefixHeaderOption)
		}
	} else {
		if !kind.MountAware || t.Options.Has("strip_prefix") { // a mount-aware app only refuses it
			if a.Strip, err = t.Options.Bool("strip_prefix", false); err != nil {
				fail(err, "strip_prefix")
			}
		}
		if a.Strip && kind.MountAware {
			fail(fmt.Errorf("strip_prefix does not apply to %s apps: they get the route's prefix as SCRIPT_NAME (%s= makes them see the full path)", t.URL.Scheme, adapters.ScriptNameOption), "strip_prefix")
		}
		if err := prefixHeaderOption(t, kind, &a); err != nil {
			fail(err, PrefixHeaderOption)
		}
	}
	if len(ps.errs) > before {
		return App{}, false
	}
	if kind.MountAware {
		if err := adapters.ResolveMount(&t, kind); err != nil {
			fail(err, adapters.ScriptNameOption)
			return App{}, false
		}
		a.ScriptName = t.Mount
	}
	a.Addr = appAddress(t)
	a.Target = t
	ps.warn(socketDirWarnings(a.Source, t)...)
	return a, true
}

// fail is a problem with the app's option key, named where the key was configured.
func (a App) fail(err error, key string) error {
	return fmt.Errorf("%s: app %q: %s", a.Where(key), a.Target.Raw, oneLine(err))
}

// middleware takes the global middleware.
func (ps *parser) middleware() {
	ps.p.Middleware = ps.cfg.Middleware
	ps.p.MiddlewareSource = ps.cfg.MiddlewareSource
	if ps.p.MiddlewareSource == "" {
		ps.p.MiddlewareSource = "GATEWAY_MIDDLEWARE"
	}
}

// acme checks that ACME, when on, has a name to get a certificate for.
func (ps *parser) acme() {
	c := ps.cfg
	if !c.ACME || ps.patternErrors {
		return
	}
	if names, _ := ps.p.CertificateNames(); len(names) == 0 {
		ps.errorf("%s=true: no name to get a certificate for: no route has an exact host name (shop.example.com/=APP) and %s is empty", c.Name("GATEWAY_ACME"), c.Ref("GATEWAY_ACME_NAMES", "GATEWAY_ACME"))
	}
}

// CertificateNames are the names ACME gets certificates for (before the static certificate takes the
// ones it covers): the exact host names of the routes, then GATEWAY_ACME_NAMES, each once. Wildcard
// route hosts are returned apart: they need DNS-01, which the gateway does not do. Hosts that are IP
// addresses or single labels (localhost) are left out.
func (p *Plan) CertificateNames() (names, wildcards []string) {
	seen := map[string]bool{}
	add := func(n string) {
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, r := range p.Routes {
		h := r.Host()
		switch {
		case h == "":
		case strings.HasPrefix(h, "*."):
			if !seen[h] {
				seen[h] = true
				wildcards = append(wildcards, h)
			}
		case config.CheckCertificateName(h) == nil:
			add(h)
		}
	}
	for _, n := range p.acmeNames {
		add(n)
	}
	return names, wildcards
}

// oneLine keeps a message of several problems on one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// split returns the errors errors.Join joined in err, or err alone.
func split(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// optionKeyRE finds the option a message is about: its first word when that is KEY=, KEY: or KEY is
// (the adapters' and migration's wording), after an app "..." prefix and the word option.
var optionKeyRE = regexp.MustCompile(`^(?:app "(?:[^"\\]|\\.)*": )?(?:unknown option "|option )?([A-Za-z_][A-Za-z0-9_.-]*)(?:=|: |" | is |$)`)

// optionKey returns the option key msg is about, or "".
func optionKey(msg string) string {
	if m := optionKeyRE.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	return ""
}

// singleLabelHostWarning warns about a pattern such as "api/" or "static": without a leading '/' its first
// segment is a host name, so the route answers only requests with "Host: api", which is rarely what was
// meant. A host with a dot, a wildcard, localhost and an IP address are taken as meant.
func singleLabelHostWarning(where, raw string, p router.Pattern) string {
	if p.Host == "" || p.Host == "localhost" || strings.ContainsAny(p.Host, ".:*") {
		return ""
	}
	path := "/" + strings.TrimPrefix(strings.TrimSpace(raw), "/")
	return fmt.Sprintf("%s: route pattern %q is read as the host %q (only requests with Host: %s); for a path write %q",
		where, strings.TrimSpace(raw), p.Host, p.Host, path)
}
