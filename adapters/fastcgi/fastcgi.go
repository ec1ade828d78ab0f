// Package fastcgi owns the FastCGI adapter: a FastCGI 1.0 client written for the gateway (records, name-value
// pairs, FCGI_KEEP_CONN with a small idle pool per app) and the http.Handler that runs requests through a
// FastCGI responder such as PHP-FPM, mounted under a path prefix.
//
// # Targets
//
//	fastcgi://host:port              TCP (port 9000 when omitted)
//	fastcgi+unix:///run/php/fpm.sock unix socket
//
// # Options
//
//	root=/srv/www       document root on the FastCGI server's filesystem; turns on script-running mode
//	index=index.php     index file and front controller (script-running mode)
//	ext=.php            only files whose name ends in ext run (byte compare, case-sensitive)
//	check_file=true     404 unless the script exists as a regular file under root, checked through os.Root
//	                    on the gateway's filesystem. Set false only when the FastCGI server runs elsewhere:
//	                    then only the extension rule protects, and PHP-FPM must itself refuse
//	                    /uploads/evil.jpg/x.php (cgi.fix_pathinfo=0 and security.limit_extensions=.php);
//	                    with PHP's defaults relaxed it does run evil.jpg (checked against PHP-FPM 8.2)
//	static=true         serve an existing regular file below root that is not a script (CSS, JavaScript,
//	                    images, uploads) as a static file, before the front controller, with the rules and
//	                    the engine of file:// apps (static.Files): os.Root, dotfiles never, ETag and
//	                    Last-Modified, ranges, precompressed siblings, Cache-Control. Default: check_file.
//	                    false sends such paths to the front controller. Needs check_file=true.
//	cache_control=...   Cache-Control of static files (as for file://); immutable_max_age=8760h likewise
//	timeout=60s         how long the app may stay silent before its response header is complete, counted
//	                    from the start and renewed whenever a request record is sent (a slow upload is not a
//	                    timeout, a slow script is): past it the client gets 504. Defaults to the gateway's
//	                    upstream timeout, else 60s.
//	read_timeout=60s    how long the app may stall (send no byte) in the middle of its response body:
//	                    the client's response is then aborted (a cut stream, never a complete-looking one)
//	                    and the connection closed, never returned to the pool. A body that keeps coming
//	                    (an event stream with heartbeats) streams as long as it needs. 0 disables it.
//	                    Defaults to the gateway's GATEWAY_UPSTREAM_READ_TIMEOUT (t.ReadTimeout; negative
//	                    there: no limit), else DefaultReadTimeout.
//	max_idle=2          idle keep-alive connections kept per app (0: FCGI_KEEP_CONN off, one connection per
//	                    request). PHP-FPM binds a worker to every open connection, so keep max_idle below the
//	                    pool's pm.max_children or idle connections starve new ones.
//	param.NAME=VALUE    an extra FastCGI parameter; overrides a derived one of the same name (for example
//	                    param.HTTPS=on or param.APP_ENV=prod). CONTENT_LENGTH cannot be set: it frames the body.
//
// # Script-running mode (root set)
//
// With check_file (the default) root must be an existing directory on the gateway's filesystem when the
// app is built: New fails otherwise, naming the option.
//
// SCRIPT_FILENAME is root + the script's path below the mount, SCRIPT_NAME is the mount + that path,
// PATH_INFO is what follows the script, REQUEST_URI is the request's own. How a path picks its script
// (split on the first existing segment ending in ext, directory index, static file, front controller as
// with nginx's `try_files $uri $uri/ /index.php?$query_string`) is documented on scripts.resolve; it is what stops the
// cgi.fix_pathinfo class of attacks (CVE-2019-11043): /uploads/evil.jpg/x.php and /uploads/evil.jpg%00.php
// never run evil.jpg. Without root the app is a plain responder (a Go net/http/fcgi or Python flup app):
// SCRIPT_NAME is the mount and PATH_INFO the rest of the path.
//
// # Bodies and errors
//
// A pooled connection is checked before reuse (a closed or chattering one is dropped), and a request
// whose reused connection turns out dead before anything was sent back or read from the client's body is
// sent once more on a fresh connection.
//
// The Handler is a transport behind the one response relay (internal/relay): RoundTrip turns a request
// into an *http.Response (the CGI head parsed, the Body reading STDOUT up to END_REQUEST, closing it
// returning the connection to the pool or closing it) and the relay writes it: hop-by-hop fields and those
// the app's Connection field names dropped, the flush whenever reading on would wait, the abort.
//
// A request body of unknown length (chunked) is spooled first by the relay, as this transport declares
// (1 MiB in memory, then an unlinked temp file), and sent with CONTENT_LENGTH, because PHP-FPM hangs on
// body bytes without it. Bodies go out in STDIN records of up to 65535 bytes while the response is read.
// STDERR lines go to the log (at most 20 lines of 1 KiB per request). Failures: cannot
// connect 502, silent past timeout 504, a garbled or truncated response before the header 502, a response
// head over t.MaxResponseHeaderBytes (default cgienv.DefaultMaxResponseHeaderBytes, 256 KiB) 502; after the
// header, a failure or a stall past read_timeout aborts the response (http.ErrAbortHandler). A cancelled
// client closes the app connection (no ABORT_REQUEST is sent: PHP-FPM ignores it).
package fastcgi

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgienv"
	"github.com/switchyard/switchyard/adapters/static"
	"github.com/switchyard/switchyard/adapters/upstream"
)

// DefaultTimeout is the timeout when neither the option nor the gateway sets one.
const DefaultTimeout = 60 * time.Second

// DefaultReadTimeout is the stall limit on a response body when neither the read_timeout option nor the
// gateway sets one.
const DefaultReadTimeout = 60 * time.Second

// DefaultMaxIdle is the default number of idle connections kept per app.
const DefaultMaxIdle = 2

// Kind returns the registry entry for FastCGI apps.
func Kind() adapters.Kind {
	return adapters.Kind{
		Schemes: []string{"fastcgi", "fastcgi+unix"},
		Factory: func(t adapters.Target) (http.Handler, error) {
			h, err := New(t)
			if err != nil {
				return nil, err // not a typed nil inside the interface
			}
			return h.withHealth()
		},
		MountAware: true,
		Summary:    "FastCGI responder such as PHP-FPM (fastcgi://host:port, fastcgi+unix:///path.sock)",
	}
}

// New builds the handler for t; it takes every option listed in the package documentation. The returned
// *Handler owns a connection pool: Close it when the configuration is retired.
func New(t adapters.Target) (_ *Handler, err error) {
	h := &Handler{app: t.Name, mount: strings.TrimSuffix(t.Mount, "/"), logger: t.Logger}
	if h.logger == nil {
		return nil, fmt.Errorf("fastcgi: target without a logger")
	}
	network, addr, err := address(t.URL)
	if err != nil {
		return nil, err
	}
	h.upstream = network + ":" + addr

	o := t.Options
	def := DefaultTimeout
	if t.DefaultTimeout > 0 {
		def = t.DefaultTimeout
	}
	var errs []string
	note := func(e error) {
		if e != nil {
			errs = append(errs, e.Error())
		}
	}
	h.timeout, err = o.Duration("timeout", def)
	note(err)
	if h.timeout == 0 {
		h.timeout = def
	}
	stallDef := DefaultReadTimeout
	switch {
	case t.ReadTimeout > 0:
		stallDef = t.ReadTimeout
	case t.ReadTimeout < 0:
		stallDef = 0
	}
	h.stall, err = o.Duration("read_timeout", stallDef)
	note(err)
	h.maxHead = cgienv.DefaultMaxResponseHeaderBytes
	if t.MaxResponseHeaderBytes > 0 {
		h.maxHead = t.MaxResponseHeaderBytes
	}
	maxIdle, err := o.Int("max_idle", DefaultMaxIdle, 0, 64)
	note(err)
	root := o.String("root", "")
	if root == "" {
		for _, name := range []string{"index", "ext", "check_file", "static", "cache_control", "immutable_max_age"} {
			if o.Has(name) {
				errs = append(errs, fmt.Sprintf("option %s needs root (the document root of script-running mode)", name))
			}
		}
	} else {
		s, err := newScripts(t.Name, root, t.Logger, o)
		note(err)
		h.scripts = s
	}
	h.params, err = extraParams(o)
	note(err)
	h.health, err = upstream.ParseHealthConfig(o)
	note(err)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	h.keepConn = maxIdle > 0
	h.relay = h.relayOptions()
	h.pool = &pool{network: network, addr: addr, maxIdle: maxIdle}
	h.pool.onUnsolicited = func() {
		h.logger.LogAttrs(context.Background(), slog.LevelWarn,
			"app sent unsolicited records on an idle connection: connection dropped, nothing delivered",
			slog.String("app", h.app), slog.String("upstream", h.upstream))
	}
	return h, nil
}

// withHealth returns h behind its active health checks (upstream.Guarded: 503 while the app fails them),
// or h itself without them. A request check runs through a second Handler on the same app that keeps no
// idle connection (PHP-FPM binds a worker to each) and whose log only feeds the check's error.
func (h *Handler) withHealth() (http.Handler, error) {
	if !h.health.Active() {
		return h, nil
	}
	probe := upstream.ConnectProbe(h.pool.network, h.pool.addr)
	if !h.health.HealthConnect {
		pl := &upstream.ProbeLog{}
		ph := &Handler{app: h.app, upstream: h.upstream, mount: h.mount, scripts: h.scripts, timeout: h.timeout,
			stall: h.stall, maxHead: h.maxHead, params: h.params, logger: pl.Logger(),
			pool: &pool{network: h.pool.network, addr: h.pool.addr}}
		ph.relay = ph.relayOptions()
		host := h.health.HealthHost
		switch {
		case host != "":
		case h.pool.network == "unix":
			host = "localhost"
		default:
			host = h.pool.addr
		}
		probe = upstream.RequestProbe(ph, pl, h.mount, h.health.HealthPath, host, h.health.HealthStatus)
	}
	g, err := upstream.NewGuarded(h.app, h.upstream, h, h.health, probe, h.logger)
	if err != nil {
		h.Close()
		return nil, err
	}
	return g, nil
}

// Reach opens a connection to the app and closes it (adapters.Reacher).
func (h *Handler) Reach(ctx context.Context, _ string) error {
	c, err := h.pool.dialer.DialContext(ctx, h.pool.network, h.pool.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// address maps the target URL to a dial address.
func address(u *url.URL) (network, addr string, err error) {
	switch strings.ToLower(u.Scheme) {
	case "fastcgi":
		if u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.Fragment != "" {
			return "", "", fmt.Errorf("expected fastcgi://host:port")
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return "", "", fmt.Errorf("expected fastcgi://host:port")
		}
		if port == "" {
			port = "9000"
		}
		return "tcp", net.JoinHostPort(host, port), nil
	case "fastcgi+unix":
		if u.Host != "" || u.Path == "" || u.Path == "/" || u.Fragment != "" {
			return "", "", fmt.Errorf("expected fastcgi+unix:///absolute/path.sock")
		}
		return "unix", u.Path, nil
	}
	return "", "", fmt.Errorf("unknown scheme %q", u.Scheme)
}

// newScripts reads the options of script-running mode (root given): index, ext, check_file, and the
// static files (static, cache_control, immutable_max_age). With check_file the root must be an existing
// directory on the gateway's filesystem now, so a typo fails `gateway check` and the start instead of
// making every request a 500.
func newScripts(app, root string, logger *slog.Logger, o *adapters.Options) (*scripts, error) {
	index := o.String("index", "index.php")
	ext := o.String("ext", ".php")
	check, err := o.Bool("check_file", true)
	if err != nil {
		return nil, err
	}
	if !path.IsAbs(root) || strings.ContainsAny(root, "\x00\\") {
		return nil, fmt.Errorf("option root=%q: expected an absolute path", root)
	}
	root = path.Clean(root)
	if root != "/" {
		root = strings.TrimSuffix(root, "/")
	}
	if index == "" || strings.ContainsAny(index, "/\\\x00") || index == "." || index == ".." {
		return nil, fmt.Errorf("option index=%q: expected a file name such as index.php", index)
	}
	if len(ext) < 2 || ext[0] != '.' || strings.ContainsAny(ext[1:], "./\\\x00") || !isASCII(ext) {
		return nil, fmt.Errorf("option ext=%q: expected an ASCII extension such as .php", ext)
	}
	s := &scripts{root: root, index: index, ext: ext, checkFile: check}
	hasStatic := o.Has("static")
	serveStatic, err := o.Bool("static", check)
	if err != nil {
		return nil, err
	}
	if check {
		fi, err := os.Stat(root)
		switch {
		case err != nil:
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("option root=%q: %v (with check_file=true the document root must exist on the gateway's filesystem; set check_file=false when the FastCGI server runs on another machine)", root, err)
		case !fi.IsDir():
			return nil, fmt.Errorf("option root=%q: not a directory", root)
		}
	} else if serveStatic && hasStatic {
		return nil, fmt.Errorf("option static=true needs check_file=true: the gateway can only serve files it sees below root")
	} else {
		serveStatic = false
	}
	if !serveStatic {
		for _, name := range []string{"cache_control", "immutable_max_age"} {
			if o.Has(name) {
				return nil, fmt.Errorf("option %s applies to static files, which are off (static=false or check_file=false)", name)
			}
		}
		return s, nil
	}
	if s.files, err = static.NewFiles(app, root, logger, o, false); err != nil {
		return nil, err
	}
	return s, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// extraParams takes the param.NAME=VALUE options, sorted by name.
func extraParams(o *adapters.Options) ([]cgienv.Param, error) {
	var out []cgienv.Param
	for _, k := range o.Family("param.") {
		name := strings.TrimPrefix(k, "param.")
		v := o.String(k, "")
		if !validParamName(name) {
			return nil, fmt.Errorf("option %s: expected param.NAME with NAME made of A-Z, a-z, 0-9 and _", k)
		}
		if name == "CONTENT_LENGTH" {
			return nil, fmt.Errorf("option %s: CONTENT_LENGTH frames the request body and cannot be configured", k)
		}
		out = append(out, cgienv.Param{Name: name, Value: v})
	}
	return out, nil
}

func validParamName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
