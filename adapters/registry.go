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
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/suggest"
)

// Target is everything a Factory needs to build one application.
type Target struct {
	// Raw is the APP string as configured, kept for error messages and the route table.
	Raw string
	// Name is the app's short label at run time: in log lines, metrics labels and the migration report.
	// Parse sets it from the name option, or to DefaultName of the instances; Build fills in DefaultName
	// when it is empty. It never carries options, so editing an app's options (a migration stage, a
	// timeout) does not rename it.
	Name string
	// URL is Raw parsed, with the query (the options) removed. For an app listing several instances it is
	// the first one (Instances[0]).
	URL *url.URL
	// Instances are the app's instances in configured order, without the query: one for a plain APP URL,
	// several for "http://10.0.0.1:8000|http://10.0.0.2:8000?lb=p2c". Nil means just URL (a Target built by
	// hand). Only kinds with MultiInstance accept more than one.
	Instances []*url.URL
	// Options are the per-app options from Raw's query. A Factory takes the keys it understands; keys nobody
	// took make Build fail, so a misspelt option is an error rather than silently ignored.
	Options *Options
	// Mount is the path prefix the app is mounted under, without a trailing slash ("" for an app mounted at
	// the root: the primary, delegates and "/" routes). Kinds that are MountAware use it as SCRIPT_NAME.
	// Registry.Build resolves the script_name option and FullPath before the factory runs, so a factory
	// always sees the SCRIPT_NAME to use here.
	Mount string
	// FullPath asks that a MountAware app see the request's whole path, as if it were mounted at the root
	// (SCRIPT_NAME empty, PATH_INFO the full path), whatever Mount says: the old app of a migrating route
	// must receive requests exactly as it did before the route existed. The script_name option overrides
	// it. Other kinds ignore it: an HTTP app's path is whatever the caller hands it.
	FullPath bool
	// Logger receives the app's error lines; never nil when built by a Registry.
	Logger *slog.Logger
	// DefaultTimeout is the gateway-wide upstream timeout (GATEWAY_UPSTREAM_TIMEOUT) that a kind's own
	// timeout option defaults to; 0 means the kind's built-in default.
	DefaultTimeout time.Duration
	// ReadTimeout is the gateway-wide limit (GATEWAY_UPSTREAM_READ_TIMEOUT) on a stall while reading an
	// app's response body: past it with no byte received, the kind aborts the response (the client sees a
	// cut stream, never a complete-looking one) and closes the upstream connection, so an app that hangs
	// half-way cannot hold a client and a connection forever. A kind's read_timeout option overrides it.
	// 0 means the kind's built-in default, a negative value no limit (GATEWAY_UPSTREAM_READ_TIMEOUT=0).
	ReadTimeout time.Duration
	// MaxResponseHeaderBytes is the gateway-wide limit (GATEWAY_MAX_RESPONSE_HEADER_SIZE) on the size of an
	// app's response head; a larger head is answered 502. 0 means the kind's built-in default.
	MaxResponseHeaderBytes int64
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
	// MultiInstance kinds accept several instances separated by '|' (Target.Instances) and balance between
	// them; Build refuses several instances for other kinds.
	MultiInstance bool
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

// multiSchemes lists the schemes of MultiInstance kinds, sorted.
func (r *Registry) multiSchemes() []string {
	var out []string
	for s, k := range r.kinds {
		if k.MultiInstance {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		out = []string{"(none)"}
	}
	return out
}

// Lookup returns the kind registered for scheme.
func (r *Registry) Lookup(scheme string) (Kind, bool) {
	k, ok := r.kinds[strings.ToLower(scheme)]
	return k, ok
}

// instanceKey is where u is reached, for finding an instance listed twice in other spellings: the
// scheme and host without case, the port as a number (the scheme's default when none), the path without
// a trailing slash.
func instanceKey(u *url.URL) string {
	port := u.Port()
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	} else if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port + strings.TrimSuffix(u.Path, "/") + u.Opaque
}

// hostPart is the authority of a URL string s ("" without "//").
func hostPart(s string) string {
	_, rest, ok := strings.Cut(s, "//")
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	return rest[:end]
}

// checkAddress finds what url.Parse lets through but no app can be reached at: a port out of range, a
// port without a host, a fragment.
func checkAddress(u *url.URL) error {
	if u.Fragment != "" || strings.HasSuffix(u.String(), "#") {
		return fmt.Errorf("a fragment (#%s) means nothing to an app: remove it", u.Fragment)
	}
	if strings.HasSuffix(strings.ToLower(u.Scheme), "unix") && strings.HasSuffix(u.Path, "/") { // (no path: the kind says what it takes)
		return fmt.Errorf("socket path %q: expected the path of a unix socket, such as unix:///run/app.sock", u.Path)
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return fmt.Errorf("host %q has an empty port: expected host:port such as 127.0.0.1:8000, or no colon", u.Host)
		}
		return nil
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %s: expected a port from 1 to 65535", port)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("port %s but no host: expected host:port such as 127.0.0.1:%s", port, port)
	}
	return nil
}

// Parse splits an APP string into its instances and options and finds its kind, without building anything.
// Several instances are separated by '|' (see SplitInstances); the options, the query after the last
// instance, apply to all of them, and all instances must belong to one kind. The error names the value and
// what was expected.
func (r *Registry) Parse(raw string) (Target, Kind, error) {
	parts, err := SplitInstances(strings.TrimSpace(raw))
	if err != nil {
		return Target{}, Kind{}, fmt.Errorf("app %q: %v", raw, err)
	}
	var kind Kind
	var rawQuery string // the last instance's: the options of the set
	insts := make([]*url.URL, 0, len(parts))
	seen := make(map[string]string, len(parts)) // instanceKey → the instance as written
	for i, p := range parts {
		if r.bareAddress(p) {
			return Target{}, Kind{}, fmt.Errorf("app %q has no scheme: an app is a URL; for an HTTP app write \"http://%s\" (schemes: %s)", raw, p, strings.Join(r.Schemes(), ", "))
		}
		u, err := url.Parse(p)
		if err != nil {
			if host := hostPart(p); strings.Count(host, ":") > 1 && !strings.HasPrefix(host, "[") {
				return Target{}, Kind{}, fmt.Errorf("app %q: host %q: an IPv6 address goes in brackets, such as http://[::1]:8000", raw, host)
			}
			return Target{}, Kind{}, fmt.Errorf("app %q is not a URL: %v", raw, err)
		}
		if u.Scheme == "" {
			return Target{}, Kind{}, fmt.Errorf("app %q has no scheme: expected one of %s", raw, strings.Join(r.Schemes(), ", "))
		}
		if err := checkAddress(u); err != nil {
			if len(parts) > 1 {
				return Target{}, Kind{}, fmt.Errorf("app %q: instance %q: %v", raw, p, err)
			}
			return Target{}, Kind{}, fmt.Errorf("app %q: %v", raw, err)
		}
		k, ok := r.Lookup(u.Scheme)
		if !ok {
			return Target{}, Kind{}, fmt.Errorf("app %q: unknown scheme %q, expected one of %s", raw, u.Scheme, strings.Join(r.Schemes(), ", "))
		}
		if i == 0 {
			kind = k
		} else if !sameKind(kind, u.Scheme) {
			return Target{}, Kind{}, fmt.Errorf("app %q: instance %q is a %s app but the first instance is %s: all instances must be of one kind", raw, p, u.Scheme, insts[0].Scheme)
		}
		rawQuery = u.RawQuery
		u.RawQuery = ""
		u.ForceQuery = false
		if prev, dup := seen[instanceKey(u)]; dup {
			if prev == u.String() {
				return Target{}, Kind{}, fmt.Errorf("app %q: instance %q is listed twice", raw, u.String())
			}
			return Target{}, Kind{}, fmt.Errorf("app %q: instances %q and %q are one address: each instance once", raw, prev, u.String())
		}
		seen[instanceKey(u)] = u.String()
		insts = append(insts, u)
	}
	opts, err := ParseOptions(rawQuery)
	if err != nil {
		return Target{}, Kind{}, fmt.Errorf("app %q: %v", raw, err)
	}
	name := DefaultName(insts)
	opts.Known("name")
	if opts.Has("name") {
		if name = opts.String("name", ""); !validName(name) {
			return Target{}, Kind{}, fmt.Errorf("app %q: option name=%q: expected a label of 1 to %d letters, digits and . _ - : / @ + (such as shop-django)", raw, name, maxNameLen)
		}
	}
	return Target{Raw: raw, Name: name, URL: insts[0], Instances: insts, Options: opts, Logger: r.logger}, kind, nil
}

// bareAddress says whether p is an address without a scheme, host:port optionally followed by a path or
// query ("localhost:8000", "127.0.0.1:3000", "[::1]:3000/app"), whose host is no scheme of r ("status:403"
// is an app). url.Parse reads "localhost:8000" as the scheme "localhost" and refuses "127.0.0.1:3000" with
// a message about path segments: neither says what is missing.
func (r *Registry) bareAddress(p string) bool {
	if strings.Contains(p, "://") {
		return false
	}
	hostport := p
	if i := strings.IndexAny(p, "/?"); i >= 0 {
		hostport = p[:i]
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" || port == "" || strings.Trim(port, "0123456789") != "" {
		return false
	}
	_, scheme := r.Lookup(host)
	return !scheme
}

// maxNameLen bounds a name option: it is a label in every metric series and log line of the app.
const maxNameLen = 64

func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._-:/@+", c) >= 0) {
			return false
		}
	}
	return true
}

// DefaultName is the label of an app that has no name option: its address without the options, short
// enough for a table column and a metrics label. An http:// instance is written host:port (and its base
// path, if any): "127.0.0.1:3000"; an instance without a host as scheme:path: "unix:/run/app.sock",
// "uwsgi+unix:/run/uwsgi.sock", "status:403"; any other as scheme://host/path: "uwsgi://127.0.0.1:3031",
// "https://api.example.com". Several instances are joined with '|'. User information (user:password@) is
// left out: a label is printed in logs and published on /metrics, where credentials must not appear.
func DefaultName(insts []*url.URL) string {
	names := make([]string, len(insts))
	for i, u := range insts {
		path := strings.TrimSuffix(u.EscapedPath(), "/")
		switch {
		case u.Opaque != "":
			names[i] = u.Scheme + ":" + u.Opaque
		case u.Host == "":
			names[i] = u.Scheme + ":" + u.EscapedPath()
		case strings.EqualFold(u.Scheme, "http"):
			names[i] = u.Host + path
		default:
			names[i] = u.Scheme + "://" + u.Host + path
		}
	}
	return strings.Join(names, "|")
}

// sameKind reports whether scheme is one of k's schemes.
func sameKind(k Kind, scheme string) bool {
	scheme = strings.ToLower(scheme)
	for _, s := range k.Schemes {
		if s == scheme {
			return true
		}
	}
	return false
}

// SplitInstances splits an APP string into its instances: "http://a:1|http://b:2?lb=p2c" gives
// ["http://a:1", "http://b:2?lb=p2c"] (the last instance keeps the options; Parse moves them to the set). A '|' separates instances only where the text after it
// starts with a scheme ("name:") and no '?' came before it: inside a path that is not followed by a scheme,
// and anywhere in the options, '|' is plain text (write %7C to be unambiguous). Options therefore always
// belong to the whole set. An empty instance is an error.
func SplitInstances(raw string) ([]string, error) {
	var instances []string
	inQuery := false
	for i, p := range strings.Split(raw, "|") {
		switch {
		case inQuery && startsWithScheme(p) && strings.Contains(p, "://"):
			// An instance after the options: the options go after the last instance only.
			_, opts, _ := strings.Cut(instances[len(instances)-1], "?")
			return nil, fmt.Errorf("instance %q comes after the options (%q): the options go after the last instance, for all of them: write URL|URL?options", p, "?"+opts)
		case inQuery:
			instances[len(instances)-1] += "|" + p // a bar in an option's value
		case strings.TrimSpace(p) == "" && (i > 0 || strings.Contains(raw, "|")):
			return nil, fmt.Errorf("empty instance in the list: expected URL|URL")
		default:
			// Spaces around a bar are no part of any URL.
			if n := len(instances); n > 0 {
				instances[n-1] = strings.TrimRight(instances[n-1], " \t")
			}
			instances = append(instances, strings.TrimLeft(p, " \t"))
		}
		if strings.IndexByte(p, '?') >= 0 {
			inQuery = true
		}
	}
	return instances, nil
}

// startsWithScheme reports whether s begins with an RFC 3986 scheme followed by ':'.
func startsWithScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return true
		default:
			return false
		}
	}
	return false
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
	if len(t.Instances) == 0 {
		t.Instances = []*url.URL{t.URL}
	}
	if t.Name == "" {
		t.Name = DefaultName(t.Instances)
	}
	for _, u := range t.Instances[1:] {
		if !sameKind(k, u.Scheme) {
			return nil, fmt.Errorf("app %q: instance %q is not a %s app: all instances must be of one kind", t.Raw, u.String(), t.URL.Scheme)
		}
	}
	if len(t.Instances) > 1 && !k.MultiInstance {
		return nil, fmt.Errorf("app %q: %s apps take one instance, got %d: only %s apps can list several instances separated by '|'", t.Raw, t.URL.Scheme, len(t.Instances), strings.Join(r.multiSchemes(), ", "))
	}
	if err := ResolveMount(&t, k); err != nil {
		return nil, fmt.Errorf("app %q: %v", t.Raw, err)
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
		return nil, fmt.Errorf("app %q: %s", t.Raw, unknownOption(left[0], t.URL.Scheme, t.Options.Asked()))
	}
	return h, nil
}

// unknownOption says that key is no option of scheme's apps, suggests the option most likely meant, and
// lists the options this app understands (those its build asked for, which include the caller's, such as
// a route's strip_prefix).
func unknownOption(key, scheme string, valid []string) string {
	msg := fmt.Sprintf("unknown option %q for %s apps", key, scheme)
	word := key
	if prefix, _, ok := strings.Cut(key, "."); ok {
		word = prefix + ".NAME" // a misspelt family (parm.X) is compared with the families (param.NAME)
	}
	if s := suggest.Closest(word, valid); s != "" {
		msg += "; did you mean " + s + "?"
	}
	if len(valid) > 0 {
		msg += " (valid here: " + strings.Join(valid, ", ") + ")"
	}
	return msg
}

// ScriptNameOption is the per-app option that sets a mount-aware app's SCRIPT_NAME: empty for "the app sees
// the full path" (part of the same site as the root app), or a prefix of the route's mount.
const ScriptNameOption = "script_name"

// ResolveMount sets t.Mount to the SCRIPT_NAME a MountAware app gets: the route's mount by default, ""
// with t.FullPath, or the script_name option, which must be empty or a prefix of the mount ending at a
// segment boundary (anything else would split paths the app never receives). Kinds that are not
// MountAware refuse the option: their path is the client's, or strip_prefix's. Build calls it; a caller
// that needs the resolved SCRIPT_NAME before building may call it first, as calling it again on its
// result changes nothing.
func ResolveMount(t *Target, k Kind) error {
	if k.MountAware {
		t.Options.Known(ScriptNameOption)
	}
	if !t.Options.Has(ScriptNameOption) {
		if t.FullPath && k.MountAware {
			t.Mount = ""
		}
		return nil
	}
	v := t.Options.String(ScriptNameOption, "")
	if !k.MountAware {
		return fmt.Errorf("option %s=%q applies only to mount-aware apps (the CGI family and file), not to %s apps: they get the client's path (or, with strip_prefix, the path below the route)", ScriptNameOption, v, t.URL.Scheme)
	}
	mount := strings.TrimSuffix(t.Mount, "/")
	sn := strings.TrimSuffix(v, "/")
	switch {
	case sn == "":
	case !strings.HasPrefix(sn, "/") || path.Clean(sn) != sn || strings.ContainsAny(sn, "?#\\\x00"):
		return fmt.Errorf("option %s=%q: expected an empty value (the app sees the full path) or a clean path such as /shop", ScriptNameOption, v)
	case mount != sn && !strings.HasPrefix(mount, sn+"/"):
		where := fmt.Sprintf("the route's prefix %q", mount+"/")
		if mount == "" {
			where = "the root, where this app is mounted"
		}
		return fmt.Errorf("option %s=%q: expected an empty value (the app sees the full path) or a prefix of %s", ScriptNameOption, v, where)
	}
	t.Mount = sn
	return nil
}
