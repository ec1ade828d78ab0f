package plan

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/migration"
)

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
// (roots) reaches, yet gets another SCRIPT_NAME: one site would then build its URLs (reverse(), redirects,
// cookie paths) two ways depending on the route.
func sharedAddressWarnings(source, pattern, which string, a App, roots []App) []string {
	if !a.Kind.MountAware {
		return nil
	}
	var out []string
	for _, r := range roots {
		if r.Addr != a.Addr || r.ScriptName == a.ScriptName {
			continue
		}
		out = append(out, fmt.Sprintf("%s: route %s: the %sapp %s is the app of %s but gets SCRIPT_NAME=%q where %s gets SCRIPT_NAME=%q: "+
			"the same site would build its URLs (reverse(), redirects, cookie paths) differently under %s; "+
			"add %s=%s to serve it as part of the same site",
			source, pattern, which, a.Addr, r.Source, a.ScriptName, r.Source, r.ScriptName, pattern, adapters.ScriptNameOption, r.ScriptName))
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
func prefixHeaderOption(t adapters.Target, kind adapters.Kind, b *App) error {
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
		if t.Options.Has("strip_prefix") && !b.Strip {
			return fmt.Errorf("option %s=x-forwarded-prefix sends the path below the prefix: it cannot go with strip_prefix=false", PrefixHeaderOption)
		}
		b.Strip = true
	case "script_name":
		if b.Strip {
			return fmt.Errorf("option %s=script_name sends the whole path (gunicorn takes SCRIPT_NAME off its front): drop strip_prefix", PrefixHeaderOption)
		}
		b.ScriptNameHeader = true
	default:
		return fmt.Errorf("option %s=%q: expected x-forwarded-prefix (the path below the prefix, for ProxyFix, Spring, ASP.NET Core) or script_name (the whole path, for gunicorn)", PrefixHeaderOption, v)
	}
	return nil
}

// tinySizeWarnings warns about size settings under 1 KiB: a bare number is bytes, so
// GATEWAY_MAX_BODY_SIZE=10 meant as 10 MiB refuses nearly every upload.
func tinySizeWarnings(cfg config.Config) []string {
	var out []string
	for _, s := range []struct {
		variable string
		v        config.Size
	}{
		{"GATEWAY_MAX_BODY_SIZE", cfg.MaxBodySize}, {"GATEWAY_MAX_HEADER_SIZE", cfg.MaxHeaderSize},
		{"GATEWAY_CASCADE_BODY_LIMIT", cfg.CascadeBodyLimit}, {"GATEWAY_MAX_RESPONSE_HEADER_SIZE", cfg.MaxResponseHeaderSize},
	} {
		if s.v > 0 && s.v < 1024 {
			out = append(out, fmt.Sprintf("%s=%d is %d bytes: sizes without a unit are bytes (write %dKiB or %dMiB if that was meant)", cfg.Name(s.variable), s.v, s.v, s.v, s.v))
		}
	}
	return out
}

// fastLaneWarnings warns that GATEWAY_FAST_LANE=true does nothing when GATEWAY_ADDR serves HTTPS: the
// lane fronts only a plain-HTTP GATEWAY_ADDR (not the plain listener next to HTTPS either), and a user who
// turned it on would otherwise find out only from switchyard_fast_lane_on being 0. The lane is on by
// default, so only a setting the user wrote is warned about: the default has nothing to say under HTTPS.
func fastLaneWarnings(cfg config.Config) []string {
	if _, set := cfg.Sources["GATEWAY_FAST_LANE"]; !set || !cfg.FastLane {
		return nil
	}
	var by string
	switch {
	case cfg.TLSCert != "":
		by = cfg.Name("GATEWAY_TLS_CERT")
	case cfg.ACME:
		by = cfg.Name("GATEWAY_ACME")
	default:
		return nil
	}
	return []string{fmt.Sprintf("%s=true does nothing here: %s serves HTTPS (%s) and the fast lane fronts only a plain-HTTP listener (docs/performance.md)",
		cfg.Name("GATEWAY_FAST_LANE"), cfg.Name("GATEWAY_ADDR"), by)}
}

// ignoredStageKeys warns about migration keys another stage uses: kept (moving back is one edit) and
// ignored at the current stage.
func ignoredStageKeys(where string, s migration.Spec) []string {
	var out []string
	for _, k := range s.Ignored {
		name := k
		if k == migration.KeyCanary {
			name = "canary (canary_percent in the file)"
		}
		out = append(out, fmt.Sprintf("%s: %s is a setting of another stage: kept, and ignored at stage %s", where, name, s.Stage))
	}
	return out
}

// stageText prints a stage for the route table: "canary 10%" carries its share.
func stageText(s migration.Spec) string {
	if s.Stage == migration.StageCanary {
		return fmt.Sprintf("canary %s%%", strconv.FormatFloat(s.CanaryPercent, 'f', -1, 64))
	}
	return string(s.Stage)
}
