package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/switchyard/switchyard/internal/suggest"
	"github.com/switchyard/switchyard/internal/units"
	"github.com/switchyard/switchyard/procs"
)

// RunOption is the app URL option that names the run app (GATEWAY_RUN, a route's run key) serving it:
// "unix://{socket}?run=blog". The gateway replaces the URL's placeholders with the addresses it
// allocated and removes the option before the adapters see the URL.
const RunOption = "run"

// RunApp is one application the gateway runs itself (package procs runs it). See docs/run-apps.md.
type RunApp struct {
	Name string
	// Command is the argv; empty when Procfile names the entry to take it from.
	Command []string
	// Procfile names the entry of the Procfile (GATEWAY_PROCFILE) whose command this app runs.
	Procfile string
	Dir      string
	Env      map[string]string
	Inherit  []string
	// Instances is the number of processes; 0 means 1.
	Instances    int
	StartTimeout Duration
	StopTimeout  Duration
	// User and Group run the app as another user (only when the gateway runs as root).
	User, Group string
	// Port is a fixed loopback port (0: allocated).
	Port int
	// OnDemand starts the app on its first request and stops it after IdleTimeout without one.
	OnDemand    bool
	IdleTimeout Duration
	// Source says where the app was declared ("GATEWAY_RUN", "gw.yaml:12: routes[2].run").
	Source string
}

// RunList is the compact form of run apps (GATEWAY_RUN): entries separated by newlines or by ';', each
//
//	NAME[(KEY=VALUE, ...)]: COMMAND
//
// with COMMAND split into words as a shell would without running one (procs.SplitCommand) and the keys
// dir, instances, inherit (names separated by spaces), start_timeout, stop_timeout, procfile, user, group,
// on_demand, idle_timeout, port and env.VARIABLE. A value holding a comma or a parenthesis is written in double quotes. An entry without a
// command takes the Procfile entry of its name:
//
//	blog(dir=/srv/blog, env.DJANGO_SETTINGS_MODULE=blog.settings): gunicorn --bind unix:{socket} blog.wsgi
type RunList []RunApp

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *RunList) UnmarshalText(b []byte) error {
	var out RunList
	for _, entry := range splitOutside(string(b), "\n;") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		a, err := parseRunEntry(strings.TrimSpace(entry))
		if err != nil {
			return err
		}
		a.Source = "GATEWAY_RUN"
		out = append(out, a)
	}
	*l = out
	return nil
}

// runNames is the names of the run apps a GATEWAY_RUN value declares, whether or not each entry can be
// read otherwise.
func runNames(v string) map[string]bool {
	out := map[string]bool{}
	for _, entry := range splitOutside(v, "\n;") {
		head := splitOutside(entry, ":")[0]
		name, _, _ := strings.Cut(head, "(")
		if name = strings.TrimSpace(name); name != "" {
			out[name] = true
		}
	}
	return out
}

// runKeyNames is the names of the run apps the file's run key declares, whether or not each can be
// read otherwise (v: the key's value, a mapping or the compact string).
func runKeyNames(v *yaml.Node) map[string]bool {
	v = resolve(v)
	if v.Kind == yaml.ScalarNode {
		return runNames(v.Value)
	}
	out := map[string]bool{}
	if v.Kind == yaml.MappingNode {
		for i := 0; i < len(v.Content); i += 2 {
			out[v.Content[i].Value] = true
		}
	}
	return out
}

// MarshalText implements encoding.TextMarshaler (for `gateway check`: the names only).
func (l RunList) MarshalText() ([]byte, error) {
	names := make([]string, len(l))
	for i, a := range l {
		names[i] = a.Name
	}
	return []byte(strings.Join(names, ",")), nil
}

// UnmarshalYAML implements yaml.Unmarshaler: the file's run key is a mapping of names to apps (each as a
// route's run key takes it), or the compact string.
func (l *RunList) UnmarshalYAML(node *yaml.Node) error {
	switch node.Kind {
	case yaml.ScalarNode:
		if err := l.UnmarshalText([]byte(node.Value)); err != nil {
			return err
		}
		for i := range *l {
			(*l)[i].Source = "" // Load names the file
		}
		return nil
	case yaml.MappingNode:
	default:
		return fmt.Errorf("line %d: expected a mapping of app names to {command: [...], dir: ..., env: {...}}", node.Line)
	}
	var out RunList
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], resolve(node.Content[i+1])
		a, err := runAppYAML(v)
		if err != nil {
			return fmt.Errorf("line %d: %s: %v", k.Line, k.Value, err)
		}
		if a.Name != "" && a.Name != k.Value {
			return fmt.Errorf("line %d: %s: name %q differs from the key", k.Line, k.Value, a.Name)
		}
		a.Name = k.Value
		out = append(out, a)
	}
	*l = out
	return nil
}

// splitOutside splits s at any of seps that is outside double or single quotes and parentheses.
func splitOutside(s, seps string) []string {
	var out []string
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case depth == 0 && strings.IndexByte(seps, c) >= 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// parseRunEntry reads one GATEWAY_RUN entry.
func parseRunEntry(e string) (RunApp, error) {
	var a RunApp
	head, command := e, ""
	// The head ends at the first ':' outside the options' parentheses.
	if parts := splitOutside(e, ":"); len(parts) > 1 {
		head, command = parts[0], strings.TrimSpace(e[len(parts[0])+1:])
	}
	head = strings.TrimSpace(head)
	name, opts, hasOpts := strings.Cut(head, "(")
	a.Name = strings.TrimSpace(name)
	if !procs.ValidName(a.Name) {
		return a, fmt.Errorf("invalid run app %q: expected NAME(KEY=VALUE, ...): COMMAND such as blog(dir=/srv/blog): gunicorn --bind unix:{socket} blog.wsgi, NAME being letters, digits and . _ -", e)
	}
	if hasOpts {
		if !strings.HasSuffix(opts, ")") {
			return a, fmt.Errorf("run app %s: options %q: expected KEY=VALUE pairs in parentheses after the name, then ':' and the command", a.Name, "("+opts)
		}
		for _, kv := range splitOutside(strings.TrimSuffix(opts, ")"), ",") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			k = strings.TrimSpace(k)
			v = unquote(strings.TrimSpace(v))
			if !ok {
				return a, fmt.Errorf("run app %s: option %q: expected KEY=VALUE", a.Name, strings.TrimSpace(kv))
			}
			if err := a.set(k, v); err != nil {
				return a, fmt.Errorf("run app %s: %v", a.Name, err)
			}
		}
	}
	if command != "" {
		argv, err := procs.SplitCommand(command)
		if err != nil {
			return a, fmt.Errorf("run app %s: command %v", a.Name, err)
		}
		a.Command = argv
	}
	return a, nil
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		if s, err := strconv.Unquote(v); err == nil {
			return s
		}
	}
	return v
}

// runKeys are the keys of a run app, in both forms.
var runKeys = []string{"name", "command", "procfile", "dir", "env", "inherit", "instances", "start_timeout", "stop_timeout", "user", "group", "on_demand", "idle_timeout", "port"}

// maxInstances bounds a run app's processes: each is an app server with its own workers, so more than
// this on one machine is a typo, not a plan.
const maxInstances = 256

// set applies one compact-form option.
func (a *RunApp) set(k, v string) error {
	if name, ok := strings.CutPrefix(k, "env."); ok {
		if a.Env == nil {
			a.Env = map[string]string{}
		}
		a.Env[name] = v
		return nil
	}
	switch k {
	case "dir":
		a.Dir = v
	case "procfile":
		a.Procfile = v
	case "port":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port=%q: expected a port from 1 to 65535 (leave it out to have one allocated)", v)
		}
		a.Port = n
	case "on_demand":
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			return fmt.Errorf("on_demand=%q: expected true or false", v)
		}
		a.OnDemand = b
	case "idle_timeout":
		if err := a.IdleTimeout.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("idle_timeout: %v", err)
		}
	case "user":
		a.User = v
	case "group":
		a.Group = v
	case "inherit":
		a.Inherit = strings.Fields(v)
	case "instances":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxInstances {
			return fmt.Errorf("instances=%q: expected a whole number from 1 to %d", v, maxInstances)
		}
		a.Instances = n
	case "start_timeout", "stop_timeout":
		var d Duration
		if err := d.UnmarshalText([]byte(v)); err != nil {
			return fmt.Errorf("%s: %v", k, err)
		}
		if k == "start_timeout" {
			a.StartTimeout = d
		} else {
			a.StopTimeout = d
		}
	default:
		known := []string{"dir", "instances", "inherit", "start_timeout", "stop_timeout", "procfile", "user", "group", "on_demand", "idle_timeout", "port", "env.VARIABLE"}
		hint := ""
		if m := suggest.Closest(k, known); m != "" {
			hint = "; did you mean " + m + "?"
		}
		return fmt.Errorf("unknown option %q%s (known: %s)", k, hint, strings.Join(known, ", "))
	}
	return nil
}

// runAppYAML reads a run app written as a YAML mapping (a route's run key, an item of the run key).
func runAppYAML(v *yaml.Node) (RunApp, error) {
	var a RunApp
	if v.Kind != yaml.MappingNode {
		return a, fmt.Errorf("expected a mapping such as {command: [gunicorn, --bind, \"unix:{socket}\", mysite.wsgi], env: {DJANGO_SETTINGS_MODULE: mysite.settings}}")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		if seen[k.Value] {
			return a, fmt.Errorf("line %d: %s is given twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		scalar := func() (string, error) {
			if val.Kind != yaml.ScalarNode {
				return "", fmt.Errorf("line %d: %s: expected a single value", val.Line, k.Value)
			}
			return val.Value, nil
		}
		list := func() ([]string, error) {
			if val.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("line %d: %s: expected a list", val.Line, k.Value)
			}
			var out []string
			for _, it := range val.Content {
				if it.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("line %d: %s: expected a list of plain values", it.Line, k.Value)
				}
				out = append(out, it.Value)
			}
			return out, nil
		}
		var err error
		switch k.Value {
		case "command":
			if val.Kind == yaml.ScalarNode {
				if a.Command, err = procs.SplitCommand(val.Value); err != nil {
					err = fmt.Errorf("line %d: command %v", val.Line, err)
				}
			} else {
				a.Command, err = list()
			}
		case "env":
			if val.Kind != yaml.MappingNode {
				return a, fmt.Errorf("line %d: env: expected a mapping of variables to values, such as {DJANGO_SETTINGS_MODULE: mysite.settings}", val.Line)
			}
			a.Env = map[string]string{}
			for j := 0; j+1 < len(val.Content); j += 2 {
				ek, ev := val.Content[j], resolve(val.Content[j+1])
				if ev.Kind != yaml.ScalarNode {
					return a, fmt.Errorf("line %d: env %s: expected a single value", ev.Line, ek.Value)
				}
				a.Env[ek.Value] = ev.Value
			}
		case "inherit":
			if val.Kind == yaml.ScalarNode {
				a.Inherit = strings.Fields(val.Value)
			} else {
				a.Inherit, err = list()
			}
		case "name", "procfile", "dir", "instances", "start_timeout", "stop_timeout", "user", "group", "on_demand", "idle_timeout", "port":
			var s string
			if s, err = scalar(); err == nil {
				if k.Value == "name" {
					a.Name = s
				} else if err = a.set(k.Value, s); err != nil {
					err = fmt.Errorf("line %d: %v", val.Line, err)
				}
			}
		default:
			msg := "unknown key " + k.Value
			if s := suggestKey(k.Value, fileKeys{names: runKeys, index: nil, vars: nil}); s != "" {
				msg += "; did you mean " + s + "?"
			}
			return a, fmt.Errorf("line %d: %s (valid here: %s)", k.Line, msg, strings.Join(runKeys, ", "))
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

// routeRunName is the name a route's run app gets when it has none: the route's pattern with every
// character a name cannot hold made '-' ("/blog/" gives "blog", "a.example.com/" "a.example.com").
func routeRunName(pattern string) string {
	b := []byte(strings.Trim(pattern, "/*."))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '-'
		}
	}
	s := strings.Trim(string(b), "-.")
	if s == "" {
		return "root"
	}
	if len(s) > 48 {
		s = s[:48]
	}
	return s
}

// RunApps lists every run app: GATEWAY_RUN (or the file's run key), then those declared on routes.
func (c Config) RunApps() []RunApp {
	out := append([]RunApp(nil), c.Run...)
	for _, r := range c.Routes {
		if r.Run != nil {
			out = append(out, *r.Run)
		}
	}
	return out
}

// AppRun reads the run option of an app string: the run app's name, the URL without the option, and
// whether the option was there.
func AppRun(app string) (name, rest string, ok bool) {
	base, query, hasQuery := strings.Cut(app, "?")
	if !hasQuery {
		return "", app, false
	}
	q, err := url.ParseQuery(query)
	if err != nil || !q.Has(RunOption) {
		return "", app, false
	}
	name = q.Get(RunOption)
	q.Del(RunOption)
	if len(q) == 0 {
		return name, base, true
	}
	return name, base + "?" + q.Encode(), true
}

// SharesItsRoute reports whether an app string's own options let another app answer its route's
// requests: a migration stage, or cascade switched on (cascade=false does not). A run app on such a route
// cannot be started on demand by it, and the route's 503 while the app is down would hide the other app.
func SharesItsRoute(app string) bool {
	_, query, _ := strings.Cut(app, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return strings.Contains("&"+query, "&stage=") || strings.Contains("&"+query, "&cascade=")
	}
	if q.Get("stage") != "" {
		return true
	}
	cascade, ok := units.ParseBool(q.Get("cascade"))
	return q.Has("cascade") && (cascade || !ok)
}

// runUse is one app string that refers to a run app.
type runUse struct {
	where string // the setting: "GATEWAY_PRIMARY", "gw.yaml:7: routes[1]"
	app   string
}

// runUses lists the app strings of the configuration that name a run app, by the name.
func (c Config) runUses() map[string][]runUse {
	uses := map[string][]runUse{}
	add := func(where, app string) {
		if name, _, ok := AppRun(app); ok {
			uses[name] = append(uses[name], runUse{where, app})
		}
	}
	add(c.Name("GATEWAY_PRIMARY"), c.Primary)
	for i, d := range c.Delegates {
		add(fmt.Sprintf("%s[%d]", c.Name("GATEWAY_DELEGATES"), i), d)
	}
	for _, r := range c.Routes {
		src := r.Source
		if src == "" {
			src = "GATEWAY_ROUTES"
		}
		add(src+": route "+r.Pattern, r.App)
	}
	return uses
}

// multiInstanceSchemes are the app URL schemes that balance between several instances.
var multiInstanceSchemes = map[string]bool{"http": true, "https": true, "unix": true}

// validateRun checks the run apps and the app URLs that name them, without running or reading anything.
func validateRun(c Config) Errors {
	var errs Errors
	apps := map[string]RunApp{}
	for _, a := range c.RunApps() {
		if prev, dup := apps[a.Name]; dup {
			errs = append(errs, fmt.Errorf("%s: run app %q is also declared at %s: each name once", a.Source, a.Name, prev.Source))
			continue
		}
		apps[a.Name] = a
		if !procs.ValidName(a.Name) {
			errs = append(errs, fmt.Errorf("%s: run app %q: expected a name of 1 to 48 letters, digits and . _ - (starting with a letter or digit)", a.Source, a.Name))
		}
		if len(a.Command) == 0 && a.Procfile == "" {
			errs = append(errs, fmt.Errorf("%s: run app %q has no command: give one (such as gunicorn --bind unix:{socket} mysite.wsgi), or set %s (an entry without a command then takes the Procfile entry of its name)", a.Source, a.Name, c.Ref("GATEWAY_PROCFILE", "GATEWAY_RUN")))
		}
	}
	ports := map[int]RunApp{}
	for _, a := range c.RunApps() {
		if a.Port == 0 {
			continue
		}
		if prev, dup := ports[a.Port]; dup && prev.Name != a.Name {
			errs = append(errs, fmt.Errorf("%s: run apps %q and %q (%s) both ask for port %d: give each its own, or leave port out to have one allocated", a.Source, prev.Name, a.Name, prev.Source, a.Port))
			continue
		}
		ports[a.Port] = a
		for _, own := range []string{"GATEWAY_ADDR", "GATEWAY_ADMIN_ADDR"} {
			addr := c.Addr
			if own == "GATEWAY_ADMIN_ADDR" {
				addr = c.AdminAddr
			}
			if host, port, err := net.SplitHostPort(addr); err == nil && port == strconv.Itoa(a.Port) && (host == "" || host == "0.0.0.0" || host == "::" || host == "127.0.0.1" || host == "localhost") {
				errs = append(errs, fmt.Errorf("%s: run app %q asks for port %d, where the gateway listens (%s=%s)", a.Source, a.Name, a.Port, c.Name(own), addr))
			}
		}
	}
	uses := c.runUses()
	names := make([]string, 0, len(uses))
	for n := range uses {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		a, known := apps[name]
		for _, u := range uses[name] {
			if !known && c.runUnread[name] {
				continue // the run app's own problem is reported
			}
			if !known {
				var declared []string
				for n := range apps {
					declared = append(declared, n)
				}
				for n := range c.runUnread {
					if _, ok := apps[n]; !ok {
						declared = append(declared, n+" (its entry has a problem)")
					}
				}
				sort.Strings(declared)
				if len(declared) == 0 {
					declared = []string{"none"}
				}
				errs = append(errs, fmt.Errorf("%s: app %q: option %s=%s names no run app (declared: %s)", u.where, u.app, RunOption, name, strings.Join(declared, ", ")))
				continue
			}
			_, rest, _ := AppRun(u.app)
			base, _, _ := strings.Cut(rest, "?")
			unix, tcp := procs.Uses(base)
			network := "unix"
			if tcp {
				network = "tcp"
			}
			if err := procs.Check(base, network); err != nil && !(unix && tcp) {
				errs = append(errs, fmt.Errorf("%s: app %q: %v", u.where, u.app, err))
			}
			switch {
			case unix && tcp:
				errs = append(errs, fmt.Errorf("%s: app %q: uses both {socket} and {addr}/{port}: the run app %s listens on one", u.where, u.app, name))
			case !unix && !tcp:
				errs = append(errs, fmt.Errorf("%s: app %q: names run app %s but holds no address placeholder, so requests would not reach it: write unix://{socket} (or uwsgi+unix://{socket}, fastcgi+unix://{socket}, ...) or http://{addr}", u.where, u.app, name))
			}
			if strings.Contains(base, "|") {
				errs = append(errs, fmt.Errorf("%s: app %q: a run app's URL is one address; the instances key makes several", u.where, u.app))
			}
			if a.OnDemand {
				onRoute := strings.Contains(u.where, ": route ")
				if !onRoute || SharesItsRoute(rest) {
					errs = append(errs, fmt.Errorf("%s: app %q: run app %s is on_demand, which needs it as the app of a route without stage or cascade (the route starts it on the request that needs it)", u.where, u.app, name))
				}
			}
			scheme, _, _ := strings.Cut(base, ":")
			if a.Instances > 1 && !multiInstanceSchemes[strings.ToLower(scheme)] {
				errs = append(errs, fmt.Errorf("%s: run app %q: instances=%d, but %s apps are not balanced between instances (only http and unix ones are): run one instance and let the app server start its own workers (uWSGI --processes, PHP-FPM pm.max_children)", a.Source, name, a.Instances, scheme))
			}
		}
	}
	for _, a := range c.RunApps() {
		if name := a.Name; len(uses[name]) == 0 && apps[name].Source == a.Source {
			errs = append(errs, fmt.Errorf("%s: run app %q is used by no app URL: name it with %s=%s on a route, the primary or a delegate (such as unix://{socket}?%s=%s)", a.Source, name, RunOption, name, RunOption, name))
		}
	}
	return errs
}

// loadProcfile fills in the commands of run apps that name a Procfile entry.
func loadProcfile(c *Config, readFile func(string) ([]byte, error)) Errors {
	if c.Procfile != "" {
		// An entry without a command takes the Procfile entry of its name: `web` is web(procfile=web).
		c.eachRunApp(func(a *RunApp) {
			if a.Procfile == "" && len(a.Command) == 0 {
				a.Procfile = a.Name
			}
		})
	}
	need := false
	var errs Errors
	for _, a := range c.RunApps() {
		if a.Procfile != "" && len(a.Command) > 0 {
			errs = append(errs, fmt.Errorf("%s: run app %q has both a command and procfile=%s: give one", a.Source, a.Name, a.Procfile))
		}
		need = need || (a.Procfile != "" && len(a.Command) == 0)
	}
	if !need || len(errs) > 0 {
		return errs
	}
	if c.Procfile == "" {
		return Errors{fmt.Errorf("run apps name Procfile entries, but no Procfile is set: set %s", c.Ref("GATEWAY_PROCFILE", "GATEWAY_RUN"))}
	}
	data, err := readFile(c.Procfile)
	if err != nil {
		return Errors{fmt.Errorf("%s=%q: cannot read the Procfile: %v", c.Name("GATEWAY_PROCFILE"), c.Procfile, err)}
	}
	entries, err := procs.ParseProcfile(c.Procfile, data)
	if err != nil {
		return Errors{err}
	}
	byName := map[string]procs.ProcfileEntry{}
	var names []string
	for _, e := range entries {
		byName[e.Name] = e
		names = append(names, e.Name)
	}
	fill := func(a *RunApp) {
		if a.Procfile == "" || len(a.Command) > 0 {
			return
		}
		e, ok := byName[a.Procfile]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: run app %q: procfile=%s: %s has no such entry (it has: %s)", a.Source, a.Name, a.Procfile, c.Procfile, strings.Join(names, ", ")))
			return
		}
		a.Command = procs.ProcfileArgv(e.Command)
	}
	c.eachRunApp(fill)
	return errs
}

// eachRunApp calls f on each run app of c to change it: those of the run list in place, a route's on a
// copy the route then holds (a route's run key may be shared with the configuration it came from).
func (c *Config) eachRunApp(f func(*RunApp)) {
	for i := range c.Run {
		f(&c.Run[i])
	}
	for i := range c.Routes {
		if c.Routes[i].Run != nil {
			r := *c.Routes[i].Run
			f(&r)
			c.Routes[i].Run = &r
		}
	}
}

// RunSpecs turns the run apps into what package procs runs: each app's network is the one its app URL
// names ({socket}: unix, {addr} or {port}: tcp). Call it on a valid configuration.
func (c Config) RunSpecs() []procs.Spec {
	uses := c.runUses()
	var out []procs.Spec
	for _, a := range c.RunApps() {
		network, probe := "unix", ""
		for _, u := range uses[a.Name] {
			if _, tcp := procs.Uses(u.app); tcp {
				network = "tcp"
			}
			// An HTTP app (http://, unix://) is ready once it answers: GET of its health_path, or /.
			_, rest, _ := AppRun(u.app)
			base, query, _ := strings.Cut(rest, "?")
			if scheme, _, _ := strings.Cut(base, ":"); strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "unix") {
				probe = "/"
				if q, err := url.ParseQuery(query); err == nil && strings.HasPrefix(q.Get("health_path"), "/") {
					probe = q.Get("health_path")
				}
			}
		}
		out = append(out, procs.Spec{Name: a.Name, Command: a.Command, ProbePath: probe, Dir: a.Dir, Env: a.Env, Inherit: a.Inherit,
			Instances: a.Instances, Network: network, StartTimeout: time.Duration(a.StartTimeout), StopTimeout: time.Duration(a.StopTimeout), User: a.User, Group: a.Group,
			OnDemand: a.OnDemand, IdleTimeout: time.Duration(a.IdleTimeout), Port: a.Port, Source: a.Source})
	}
	return out
}

// WithRunAddrs returns the configuration with every app URL that names a run app written out for the
// instances' addresses: the placeholders replaced (one instance per address, joined with '|'), the run
// option removed, and name=NAME added unless the URL names the app, so its label in logs, metrics and the
// migration report stays the same across restarts. An on_demand app gets ready=false unless its URL
// says otherwise: it runs only once a request asks for it, so /readyz must not wait for it. addrs gives
// an app's addresses.
//
// An app naming a run app that addrs gives no address (one whose declaration could not be read, when
// the problems of a configuration are gathered) gets a made-up one of the kind its placeholders ask for,
// so its URL's other options are checked too. AsConfigured gives back what was configured.
func (c Config) WithRunAddrs(addrs func(name string) []procs.Addr) Config {
	written := map[string]string{}
	onDemand := map[string]bool{}
	for _, a := range c.RunApps() {
		onDemand[a.Name] = a.OnDemand
	}
	rewrite := func(app string) string {
		name, rest, ok := AppRun(app)
		if !ok {
			return app
		}
		base, query, _ := strings.Cut(rest, "?")
		// A run app's URL is one address (validateRun says so of one with '|'): its first, so the
		// instances made of it are not reported again as listed twice.
		base, _, _ = strings.Cut(base, "|")
		q, _ := url.ParseQuery(query)
		if !q.Has("name") {
			q.Set("name", name)
		}
		if onDemand[name] && !q.Has("ready") {
			q.Set("ready", "false")
		}
		as := addrs(name)
		if len(as) == 0 {
			as = []procs.Addr{{Network: "tcp", Address: "127.0.0.1:1"}}
			if unix, _ := procs.Uses(base); unix {
				as[0] = procs.Addr{Network: "unix", Address: filepath.Join(os.TempDir(), "switchyard-run-"+name+".sock")}
			}
		}
		insts := make([]string, len(as))
		for i, a := range as {
			insts[i] = procs.Expand(base, a, i)
		}
		out := strings.Join(insts, "|") + "?" + q.Encode()
		written[out] = app
		return out
	}
	c.Primary = rewrite(c.Primary)
	c.Delegates = append(AppList(nil), c.Delegates...)
	for i := range c.Delegates {
		c.Delegates[i] = rewrite(c.Delegates[i])
	}
	c.Routes = append(RouteList(nil), c.Routes...)
	for i := range c.Routes {
		c.Routes[i].App = rewrite(c.Routes[i].App)
	}
	c.runWritten = written
	return c
}

// AsConfigured gives back s (a problem's text) with each app URL WithRunAddrs wrote, quoted as problems
// quote an app, as it was configured: the user reads the URL they wrote, placeholders and run option
// included, not the addresses the gateway filled in.
func (c Config) AsConfigured(s string) string {
	for out, app := range c.runWritten {
		s = strings.ReplaceAll(s, strconv.Quote(out), strconv.Quote(app))
	}
	return s
}
