// Package cgiwire owns the request side shared by the adapters that speak a CGI-family protocol over one
// connection per request, uwsgi and SCGI: reading their common options and address forms, dialing, timing
// out, sending the request body, reading the response head and mapping failures before it to statuses. A
// Handler is a transport behind the one response relay (internal/relay), which spools request bodies of
// unknown length (the transport declares it) and writes the answer. Each protocol contributes only its
// request encoding and its response-head reader (a Protocol).
//
// One connection is dialed per request and closed when the response ends; nothing is pooled, so a Handler
// holds no resources between requests.
package cgiwire

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/cgienv"
	ups "github.com/switchyard/switchyard/adapters/upstream"
)

// Defaults for the options every cgiwire adapter takes.
const (
	// DefaultTimeout bounds the wait from the start of a request to the app's response head when neither
	// the timeout option nor the gateway's upstream timeout says otherwise.
	DefaultTimeout = 60 * time.Second
	// DefaultDialTimeout bounds connecting to the app.
	DefaultDialTimeout = 5 * time.Second
	// DefaultReadTimeout is the stall limit on the response body when neither the read_timeout option nor
	// the gateway's upstream read timeout says otherwise.
	DefaultReadTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes bounds the response head when the gateway sets no limit (it is also the
	// gateway's own default, GATEWAY_MAX_RESPONSE_HEADER_SIZE).
	DefaultMaxHeaderBytes = cgienv.DefaultMaxResponseHeaderBytes
	// SpoolMemory is how much of a body of unknown length is held in memory before it spills to a temp file.
	SpoolMemory = 1 << 20
	// ParamPrefix starts the option keys that configure extra variables: ?param.UWSGI_APPID=site sends
	// UWSGI_APPID=site with every request, overriding a derived variable of the same name.
	ParamPrefix = "param."
)

// Config is one app's connection settings, as read from its APP URL by ParseTarget.
type Config struct {
	// App is the app's label (adapters.Target.Name), named in every log line.
	App string
	// Network is "tcp" or "unix"; Address the host:port or socket path.
	Network, Address string
	// Mount is the mount prefix (no trailing slash, "" at the root); it becomes SCRIPT_NAME.
	Mount string
	// Timeout bounds how long the app may stay silent before its response head is complete (0: no limit),
	// counted from the start of the request and renewed whenever a piece of the request body is written
	// to the app, so a slow upload is not the app's delay but a slow app is.
	Timeout time.Duration
	// ReadTimeout is the stall limit while the response body streams (0: no limit): when no byte arrives
	// from the app for that long, the response is aborted and the connection closed. A body that keeps
	// trickling (an event stream with heartbeats) lives as long as it keeps trickling.
	ReadTimeout time.Duration
	// MaxHeaderBytes bounds each response head (> 0; ParseTarget sets it); a larger one answers 502.
	MaxHeaderBytes int64
	// DialTimeout bounds connecting (0: no limit besides the request's context).
	DialTimeout time.Duration
	// Params are configured variables applied after the derived ones (they override by name).
	Params []cgienv.Param
	// Health is the active health check (ups.ParseHealthConfig): a GET of Health.HealthPath in the
	// app's protocol, or a connect-only check; NewApp guards the app with it when Health.Active().
	Health ups.Config
}

// Upstream names the app's address for log lines: "127.0.0.1:3031" or "unix:/run/app.sock".
func (c Config) Upstream() string {
	if c.Network == "unix" {
		return "unix:" + c.Address
	}
	return c.Address
}

// ParseTarget reads t's address and takes the options every cgiwire adapter understands:
//
//	timeout=60s        how long the app may stay silent before its response head is complete (0
//	                   disables), counted from the start of the request and renewed whenever a piece of
//	                   the request body is written to the app; a slow app gets 504. The default is the
//	                   gateway's upstream timeout (t.DefaultTimeout) when set, else DefaultTimeout
//	read_timeout=60s   how long the app may stall in the middle of its response body (no byte at all;
//	                   0 disables): the client's response is then aborted (a cut stream, never a
//	                   complete-looking one) and the connection closed. The default is the gateway's
//	                   upstream read timeout (t.ReadTimeout; negative there: no limit), else
//	                   DefaultReadTimeout
//	dial_timeout=5s    wait for the connection; a timeout gets 504, a refused connection 502
//	param.NAME=value   send NAME=value with every request (repeatable with different names)
//	health_path=/x     active health checks (ups.ParseHealthConfig: health_path, health_check,
//	                   health_host, health_interval, health_timeout, health_status, healthy_threshold,
//	                   unhealthy_threshold): a GET of the mount + health_path through the protocol, as a
//	                   client request there would be sent, or with health_check=connect a connection only
//
// The response head may not exceed t.MaxResponseHeaderBytes (DefaultMaxHeaderBytes when 0); a larger one
// answers 502.
//
// scheme is the TCP scheme ("uwsgi"): scheme://host:port dials TCP and scheme+unix:///abs/path dials a unix
// socket. Parameter names are limited to letters, digits, '_', '.' and '-'; CONTENT_LENGTH is refused
// because it frames the body and a wrong value would desynchronise the connection, and reserved lists
// further names the protocol owns.
func ParseTarget(t adapters.Target, scheme string, reserved ...string) (Config, error) {
	c := Config{App: t.Name, Mount: t.Mount}
	if t.URL == nil {
		return c, errors.New("no URL")
	}
	u := t.URL
	switch strings.ToLower(u.Scheme) {
	case scheme:
		if u.Host == "" || u.Port() == "" || u.Hostname() == "" {
			return c, fmt.Errorf("expected %s://host:port", scheme)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
			return c, fmt.Errorf("expected %s://host:port with nothing after the port", scheme)
		}
		c.Network, c.Address = "tcp", u.Host
	case scheme + "+unix":
		if u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") || u.Fragment != "" {
			return c, fmt.Errorf("expected %s+unix:///absolute/path/to/socket", scheme)
		}
		c.Network, c.Address = "unix", u.Path
	default:
		return c, fmt.Errorf("scheme %q is not %s or %s+unix", u.Scheme, scheme, scheme)
	}
	opts := t.Options
	if opts == nil {
		opts = &adapters.Options{}
	}
	var err error
	def := DefaultTimeout
	if t.DefaultTimeout > 0 {
		def = t.DefaultTimeout
	}
	if c.Timeout, err = opts.Duration("timeout", def); err != nil {
		return c, err
	}
	readDef := DefaultReadTimeout
	switch {
	case t.ReadTimeout > 0:
		readDef = t.ReadTimeout
	case t.ReadTimeout < 0:
		readDef = 0
	}
	if c.ReadTimeout, err = opts.Duration("read_timeout", readDef); err != nil {
		return c, err
	}
	if c.DialTimeout, err = opts.Duration("dial_timeout", DefaultDialTimeout); err != nil {
		return c, err
	}
	c.MaxHeaderBytes = DefaultMaxHeaderBytes
	if t.MaxResponseHeaderBytes > 0 {
		c.MaxHeaderBytes = t.MaxResponseHeaderBytes
	}
	if c.Health, err = ups.ParseHealthConfig(opts); err != nil {
		return c, err
	}
	for _, k := range opts.Family(ParamPrefix) { // sorted, so params keep a stable order
		name := k[len(ParamPrefix):]
		value := opts.String(k, "")
		if err := checkParam(name, value, reserved); err != nil {
			return c, fmt.Errorf("option %s: %v", k, err)
		}
		c.Params = append(c.Params, cgienv.Param{Name: name, Value: value})
	}
	return c, nil
}

func checkParam(name, value string, reserved []string) error {
	if name == "" {
		return errors.New("empty variable name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c == '.' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return fmt.Errorf("variable name %q: expected letters, digits, '_', '.' or '-'", name)
		}
	}
	if strings.EqualFold(name, "CONTENT_LENGTH") {
		return errors.New("CONTENT_LENGTH frames the request body and cannot be configured")
	}
	for _, r := range reserved {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("%s is set by the protocol and cannot be configured", r)
		}
	}
	if strings.IndexByte(value, 0) >= 0 {
		return errors.New("value contains a NUL byte")
	}
	return nil
}

// dialer returns the dialer for c.
func (c Config) dialer() *net.Dialer {
	return &net.Dialer{Timeout: c.DialTimeout}
}

// healthHost is the Host of a health check request: the configured health_host, else the app's own
// address (host:port), or "localhost" for a unix socket, as for HTTP apps.
func (c Config) healthHost() string {
	switch {
	case c.Health.HealthHost != "":
		return c.Health.HealthHost
	case c.Network == "unix":
		return "localhost"
	}
	return c.Address
}
