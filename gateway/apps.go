package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/migration"
)

// appRole says where an app sits in the configuration, which decides the options it takes.
type appRole int

const (
	rolePrimary appRole = iota
	roleDelegate
	roleRoute // a route's APP: takes the route options (stage, cascade, strip_prefix)
	roleOld   // the old app of a migrating route: sees the client's path unless asked otherwise
)

// builtApp is one application as Build made it, with the facts the rest of the build needs.
type builtApp struct {
	h    http.Handler
	kind adapters.Kind
	// strip and cascade are the route options (strip_prefix also applies to an old app).
	strip, cascade bool
	// encodedSlash is the route option encoded_slash (router.Route.EncodedSlash).
	encodedSlash bool
	// passHeader is the pass_header option, canonical ("" when not set).
	passHeader string
	// addr is the app's address without options, for the shared-address check; scriptName the
	// SCRIPT_NAME a mount-aware app gets.
	addr, scriptName string
	// id identifies the app as configured, for the migration numbers' keys (appIdentity).
	id string
	// name is the app's label (adapters.Target.Name): apps are named by it in reqinfo, and so in the
	// access log, the metrics and the migration report.
	name string
	// unready is the ready=false option: the app's health never makes /readyz fail.
	unready bool
	// scriptNameHeader is prefix_header=script_name: the route's prefix goes to the app in the SCRIPT_NAME
	// request header, with the path left whole.
	scriptNameHeader bool
	// plainHTTP is https_redirect=false: the route is served on the plain HTTP listener too.
	plainHTTP bool
}

// rootApp is the primary or a delegate, named by the place it was configured.
type rootApp struct {
	source string
	b      builtApp
}

// PassHeaderOption is the per-app option naming a response header that must come with a pass status for
// the answer to pass on (see delegate.App.PassHeader).
const PassHeaderOption = "pass_header"

// passHeaderOption takes the pass_header option: a header field name, returned in canonical form.
func passHeaderOption(o *adapters.Options) (string, error) {
	o.Known(PassHeaderOption)
	if !o.Has(PassHeaderOption) {
		return "", nil
	}
	v := o.String(PassHeaderOption, "")
	if v == "" || strings.IndexFunc(v, func(c rune) bool { return !isTokenChar(c) }) >= 0 {
		return "", fmt.Errorf("option %s=%q: expected a header name such as X-Switchyard-Pass", PassHeaderOption, v)
	}
	return http.CanonicalHeaderKey(v), nil
}

// isTokenChar reports whether c may appear in a header field name (RFC 9110 token).
func isTokenChar(c rune) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", c)
}

// appAddress is where t is reached, without its options: scheme and host compared case-insensitively.
func appAddress(t adapters.Target) string {
	u := t.URL
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + u.Path + u.Opaque
}

// appIdentity identifies an app as configured, for the keys that decide whether a route's migration
// numbers carry over a reload: its label, its instances and its options, without the migration keys (the
// stage settings are compared by migration.Spec.Key, and a stage is not a property of the app).
func appIdentity(t adapters.Target) string {
	insts := make([]string, len(t.Instances))
	for i, u := range t.Instances {
		insts[i] = u.String()
	}
	q, _ := url.ParseQuery(t.Options.Encode())
	for _, k := range migration.Keys {
		q.Del(k)
	}
	return t.Name + " " + strings.Join(insts, "|") + "?" + q.Encode()
}

// sharedAddressWarnings warns, naming source (where the route was configured), when a route's mount-aware
// app (which: "" for the route's APP, "old " for its old app) is the very app the primary or a delegate
// reaches, yet gets another SCRIPT_NAME: one site would then build its URLs (reverse(), redirects, cookie
// paths) two ways depending on the route.
func sharedAddressWarnings(source, pattern, which string, b builtApp, roots []rootApp) []string {
	if !b.kind.MountAware {
		return nil
	}
	var out []string
	for _, r := range roots {
		if r.b.addr != b.addr || r.b.scriptName == b.scriptName {
			continue
		}
		out = append(out, fmt.Sprintf("%s: route %s: the %sapp %s is the app of %s but gets SCRIPT_NAME=%q where %s gets SCRIPT_NAME=%q: "+
			"the same site would build its URLs (reverse(), redirects, cookie paths) differently under %s; "+
			"add %s=%s to serve it as part of the same site",
			source, pattern, which, b.addr, r.source, b.scriptName, r.source, r.b.scriptName, pattern, adapters.ScriptNameOption, r.b.scriptName))
	}
	return out
}

// EncodedSlashOption is the route option that lets "%2F" in a path reach the route's app unchanged
// (router.Route.EncodedSlash; docs/paths.md).
const EncodedSlashOption = "encoded_slash"

// HTTPSRedirectOption is the route option that, set to false, serves the route on the plain HTTP listener
// (GATEWAY_HTTP_ADDR) as well instead of redirecting it to HTTPS: for apps that must stay reachable over
// HTTP (old clients, devices without TLS).
const HTTPSRedirectOption = "https_redirect"

// socketDirWarnings warns about each unix socket of t (an instance of a unix:// or *+unix:// app) whose
// directory does not exist: the app may not have created its socket yet, which is normal before it starts,
// but it can never create one in a missing directory, so the path is probably wrong (/run/gunicorn/ is
// created by systemd's RuntimeDirectory= or tmpfiles.d, and vanishes at reboot without them).
func socketDirWarnings(source string, t adapters.Target) []string {
	insts := t.Instances
	if len(insts) == 0 {
		insts = []*url.URL{t.URL}
	}
	var out []string
	for _, u := range insts {
		scheme := strings.ToLower(u.Scheme)
		if scheme != "unix" && !strings.HasSuffix(scheme, "+unix") || !path.IsAbs(u.Path) {
			continue
		}
		dir := path.Dir(u.Path)
		fi, err := os.Stat(dir)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: app %q: the directory %s of the unix socket %s does not exist (%v): the app cannot create its socket there; check the path, or create the directory (systemd RuntimeDirectory=)",
				source, t.Raw, dir, u.Path, errors.Unwrap(err)))
		case !fi.IsDir():
			out = append(out, fmt.Sprintf("%s: app %q: %s, where the unix socket %s should be, is not a directory", source, t.Raw, dir, u.Path))
		}
	}
	return out
}

// processEnvSettings are variables that apps and their interpreters read from the process environment
// once, when they start, never from a request. Sent with param.NAME they land in the request's variables
// (the WSGI environ, $_SERVER), where nothing looks for them: param.DJANGO_SETTINGS_MODULE silently
// does nothing. The value says who reads it.
var processEnvSettings = map[string]string{
	"DJANGO_SETTINGS_MODULE": "Django reads it from os.environ when the app is loaded",
	"DJANGO_CONFIGURATION":   "django-configurations reads it from os.environ when the app is loaded",
	"FLASK_APP":              "the flask command reads it when it starts",
	"FLASK_ENV":              "Flask reads it from os.environ when the app is created",
	"FLASK_DEBUG":            "Flask reads it from os.environ when the app is created",
	"PYTHONPATH":             "the Python interpreter reads it when it starts",
	"PYTHONHOME":             "the Python interpreter reads it when it starts",
	"RAILS_ENV":              "Rails reads it from ENV when the app boots",
	"RACK_ENV":               "Rack reads it from ENV when the app boots",
	"NODE_ENV":               "Node reads it from process.env when it starts",
}

// processEnvParamWarnings warns about param.NAME options whose NAME is a process-level setting
// (processEnvSettings), saying what to do instead: one app server per value with NAME in its
// environment, or, for uWSGI, a uWSGI in vhost mode loading a module per route that sets the variable
// itself (UWSGI_SETENV cannot: the first app loaded runs in the main interpreter, whose os.environ was
// read before any request).
func processEnvParamWarnings(source, raw, scheme string, o *adapters.Options) []string {
	q, err := url.ParseQuery(o.Encode())
	if err != nil {
		return nil
	}
	var names []string
	for k := range q {
		if name, ok := strings.CutPrefix(k, "param."); ok && processEnvSettings[name] != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []string
	for _, name := range names {
		instead := fmt.Sprintf("run one app server per value with %s in its environment, behind host or path routes", name)
		if strings.HasPrefix(scheme, "uwsgi") {
			instead += fmt.Sprintf(", or one uWSGI in vhost mode (--vhost) with param.UWSGI_APPID and a param.UWSGI_SCRIPT per route naming a module that sets os.environ[%q] = %q itself before the app loads", name, q.Get("param."+name))
		}
		out = append(out, fmt.Sprintf("%s: app %q: param.%s does nothing: %s, not from a request's variables; %s (docs/django-sites.md)",
			source, raw, name, processEnvSettings[name], instead))
	}
	return out
}

// PrefixHeaderOption is the route option that announces the route's prefix to an HTTP app in the form its
// server reads (docs/apps.md has the table of servers and frameworks):
//
//	x-forwarded-prefix  the path below the prefix, and X-Forwarded-Prefix: /prefix (what strip_prefix=true
//	                    does; werkzeug's ProxyFix with x_prefix=1, Spring's ForwardedHeaderFilter and
//	                    ASP.NET Core's forwarded headers read it)
//	script_name         the whole path, and SCRIPT_NAME: /prefix (gunicorn makes it the WSGI SCRIPT_NAME, so
//	                    stock Django and Flask need no change)
const PrefixHeaderOption = "prefix_header"

// prefixHeaderOption takes the prefix_header option of a route's (or old) app into b.
func prefixHeaderOption(t adapters.Target, kind adapters.Kind, b *builtApp) error {
	if !kind.MountAware {
		t.Options.Known(PrefixHeaderOption)
	}
	if !t.Options.Has(PrefixHeaderOption) {
		return nil
	}
	v := strings.ToLower(t.Options.String(PrefixHeaderOption, ""))
	if kind.MountAware {
		return fmt.Errorf("option %s=%s does not apply to %s apps: they get the route's prefix as SCRIPT_NAME already", PrefixHeaderOption, v, t.URL.Scheme)
	}
	switch v {
	case "x-forwarded-prefix":
		if t.Options.Has("strip_prefix") && !b.strip {
			return fmt.Errorf("option %s=x-forwarded-prefix sends the path below the prefix: it cannot go with strip_prefix=false", PrefixHeaderOption)
		}
		b.strip = true
	case "script_name":
		if b.strip {
			return fmt.Errorf("option %s=script_name sends the whole path (gunicorn takes SCRIPT_NAME off its front): drop strip_prefix", PrefixHeaderOption)
		}
		b.scriptNameHeader = true
	default:
		return fmt.Errorf("option %s=%q: expected x-forwarded-prefix (the path below the prefix, for ProxyFix, Spring, ASP.NET Core) or script_name (the whole path, for gunicorn)", PrefixHeaderOption, v)
	}
	return nil
}
