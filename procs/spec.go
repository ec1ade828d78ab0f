// Package procs owns the application processes the gateway runs itself ("run apps"): it starts each
// app's instances from an argv, a working directory and an environment of their own on addresses it
// allocates (a unix socket in a private runtime directory, or a loopback port), waits until every
// instance accepts connections, restarts an instance that exits (exponential backoff, crash-loop limit),
// logs the instances' output line by line tagged with the app and instance, replaces a whole app without
// downtime (the new instances first, the old ones stopped once no gateway uses them), and stops them all
// at shutdown (SIGTERM to each process group, then SIGKILL after the app's stop timeout).
//
// It knows nothing of routes or HTTP: the gateway (cmd/gateway) writes the addresses a Plan gives into
// its app URLs. Nothing here reads the gateway's own environment except the variables a Spec's Inherit
// names, looked up through Options.LookupEnv.
package procs

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec is one application to run.
type Spec struct {
	// Name labels the app in log lines, the admin API and errors; unique among the specs of a Prepare.
	Name string
	// Command is the argv, run as is (no shell: write [sh, -c, "..."] to have one). Its items may use the
	// placeholders of Expand. Command[0] without a slash is looked up in the gateway's PATH.
	Command []string
	// Dir is the working directory; "" means the gateway's own.
	Dir string
	// Env is the app's own environment (values may use the placeholders of Expand). Nothing of the
	// gateway's environment is passed on except the variables Inherit names; PORT (and HOST) or SOCKET are
	// always set to the instance's address.
	Env map[string]string
	// Inherit names variables of the gateway's environment the app gets too (PATH, HOME, LANG, ...).
	Inherit []string
	// Instances is the number of processes, each on its own address (0 means 1).
	Instances int
	// Network is "unix" (a socket in the runtime directory; the default) or "tcp" (a loopback port).
	Network string
	// Port, when not 0, is a fixed loopback port for the app (Network tcp, one instance) instead of an
	// allocated one, for an app that cannot be told where to listen. Such an app cannot be replaced
	// without downtime: its old instance must free the port before the new one starts.
	Port int
	// StartTimeout bounds the wait for every instance to accept a connection (0: 30 s).
	StartTimeout time.Duration
	// StopTimeout is how long an instance has to exit after SIGTERM before its process group gets
	// SIGKILL (0: 10 s).
	StopTimeout time.Duration
	// ProbePath, when set, makes an instance ready only once it answers an HTTP/1.1 GET of this path
	// (any status) on its address, not as soon as it accepts a connection: an HTTP app server such as
	// gunicorn accepts before its workers have loaded the app, and exits when they cannot.
	ProbePath string
	// OnDemand starts the app on the first request that needs it (which waits until it accepts) instead
	// of before the gateway is ready, and stops it after IdleTimeout without a request (0: 5 minutes).
	OnDemand    bool
	IdleTimeout time.Duration
	// User and Group run the app as another user and group (names or numbers; Group defaults to the
	// user's primary group). Only a gateway running as root can: otherwise Validate refuses them.
	User, Group string
	// Source says where the app was configured, for errors ("gw.yaml:12: routes[2].run").
	Source string
}

const (
	defaultStartTimeout = 30 * time.Second
	defaultStopTimeout  = 10 * time.Second
)

func (s Spec) instances() int {
	if s.Instances < 1 {
		return 1
	}
	return s.Instances
}

func (s Spec) network() string {
	if s.Network == "" {
		return "unix"
	}
	return s.Network
}

func (s Spec) idleTimeout() time.Duration {
	if s.IdleTimeout <= 0 {
		return 5 * time.Minute
	}
	return s.IdleTimeout
}

func (s Spec) startTimeout() time.Duration {
	if s.StartTimeout <= 0 {
		return defaultStartTimeout
	}
	return s.StartTimeout
}

func (s Spec) stopTimeout() time.Duration {
	if s.StopTimeout <= 0 {
		return defaultStopTimeout
	}
	return s.StopTimeout
}

func (s Spec) clone() Spec {
	s.Command = append([]string(nil), s.Command...)
	s.Inherit = append([]string(nil), s.Inherit...) // User and Group are plain strings
	env := make(map[string]string, len(s.Env))
	for k, v := range s.Env {
		env[k] = v
	}
	s.Env = env
	return s
}

// Key identifies what runs: two specs with the same key run the same processes, so a reload that keeps
// the key keeps the running instances, and one that changes it (the command, directory, environment,
// inherited names, instance count or network) replaces them.
func (s Spec) Key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q\x00%q\x00%d\x00%s\x00%q\x00%d\x00", s.Command, s.Dir, s.instances(), s.network(), s.Inherit, s.Port)
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%q=%q\x00", k, s.Env[k])
	}
	fmt.Fprintf(&b, "%s\x00%s\x00%q\x00%q\x00%v\x00%s", s.startTimeout(), s.stopTimeout(), s.User, s.Group, s.OnDemand, s.idleTimeout())
	return b.String()
}

// String is the command as a user would type it, for logs and `gateway check`.
func (s Spec) String() string {
	parts := make([]string, len(s.Command))
	for i, a := range s.Command {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`|&;<>(){}*?[]#~") {
			parts[i] = strconv.Quote(a)
		} else {
			parts[i] = a
		}
	}
	return strings.Join(parts, " ")
}

// Addr is where one instance listens.
type Addr struct {
	Network string // "unix" or "tcp"
	Address string // the socket's absolute path, or 127.0.0.1:PORT
}

// Port is the port of a tcp address ("" for a unix one).
func (a Addr) Port() string {
	if a.Network != "tcp" {
		return ""
	}
	_, port, _ := strings.Cut(a.Address, ":")
	return port
}

// Placeholders are the names Expand replaces, each written in braces.
var Placeholders = []string{"socket", "addr", "port", "instance"}

var placeholder = regexp.MustCompile(`\{([a-z_]+)\}`)

// Check reports the placeholders s uses that are unknown, or that do not fit network ({socket} needs a
// unix address, {addr} and {port} a tcp one).
func Check(s, network string) error {
	for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
		switch m[1] {
		case "socket":
			if network != "unix" {
				return fmt.Errorf("placeholder {socket} needs a unix socket, but the app listens on a loopback port: use {addr} or {port}")
			}
		case "addr", "port":
			if network != "tcp" {
				return fmt.Errorf("placeholder {%s} needs a loopback port, but the app listens on a unix socket: use {socket}", m[1])
			}
		case "instance":
		default:
			return fmt.Errorf("unknown placeholder {%s} (known: {%s})", m[1], strings.Join(Placeholders, "}, {"))
		}
	}
	return nil
}

// addressVars finds a reference to the address variables the gateway sets: $SOCKET or ${SOCKET}, and
// the same of PORT and HOST.
var addressVars = regexp.MustCompile(`\$\{?(SOCKET|PORT|HOST)\b`)

// addressVar is the address variable s reads that an app listening on network does not get (ok false:
// none): SOCKET for a loopback port, PORT or HOST for a unix socket.
func addressVar(s, network string) (string, bool) {
	for _, m := range addressVars.FindAllStringSubmatch(s, -1) {
		if (m[1] == "SOCKET") != (network == "unix") {
			return m[1], true
		}
	}
	return "", false
}

// Uses reports which address placeholders s uses: {socket} (unix), {addr} or {port} (tcp).
func Uses(s string) (unix, tcp bool) {
	for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
		switch m[1] {
		case "socket":
			unix = true
		case "addr", "port":
			tcp = true
		}
	}
	return unix, tcp
}

// Expand replaces the placeholders in s for the instance (numbered from 0) listening on a: {socket} is the
// socket's path, {addr} host:port, {port} the port, {instance} the number. Unknown placeholders are
// left as they are (Check reports them).
func Expand(s string, a Addr, instance int) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		switch m[1 : len(m)-1] {
		case "socket":
			if a.Network == "unix" {
				return a.Address
			}
		case "addr":
			if a.Network == "tcp" {
				return a.Address
			}
		case "port":
			if a.Network == "tcp" {
				return a.Port()
			}
		case "instance":
			return strconv.Itoa(instance)
		}
		return m
	})
}

// validName is what an app name may be: it becomes part of socket file names and log labels.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$`)

// ValidName reports whether name can name a run app.
func ValidName(name string) bool { return validName.MatchString(name) }

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks a spec without running anything except a lookup of the program and of the working
// directory, so `gateway check` finds a missing program or directory. Every error names the app.
func (s Spec) Validate() []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: run app %q: %s", s.Source, s.Name, fmt.Sprintf(format, args...)))
	}
	if !ValidName(s.Name) {
		fail("expected a name of 1 to 48 letters, digits and . _ - (starting with a letter or digit)")
	}
	switch s.Network {
	case "", "unix", "tcp":
	default:
		fail("network %q: expected unix or tcp", s.Network)
	}
	if s.Instances < 0 {
		fail("instances %d: expected 1 or more", s.Instances)
	}
	if s.Port != 0 {
		switch {
		case s.Port < 1 || s.Port > 65535:
			fail("port %d: expected a port from 1 to 65535", s.Port)
		case s.network() != "tcp":
			fail("port %d: a fixed port needs an app URL with {addr} or {port}", s.Port)
		case s.instances() > 1:
			fail("port %d with %d instances: a fixed port holds one instance; leave the port out to have one allocated per instance", s.Port, s.instances())
		}
	}
	if len(s.Command) == 0 || strings.TrimSpace(s.Command[0]) == "" {
		fail("no command: expected the program and its arguments, such as [gunicorn, --bind, \"unix:{socket}\", mysite.wsgi]")
		return errs
	}
	for _, a := range s.Command {
		if err := Check(a, s.network()); err != nil {
			fail("command %s: %v", s, err)
		}
		switch v, ok := addressVar(a, s.network()); {
		case ok && v == "SOCKET":
			fail("command %s reads $SOCKET, which the gateway sets only for an app on a unix socket, but this app's URL is on a loopback port ({addr} or {port}): write the URL with unix://{socket}, or have the command use $PORT (or {addr}, {port})", s)
		case ok:
			fail("command %s reads $%s, which the gateway sets only for an app on a loopback port, but this app's URL is on a unix socket ({socket}): write the URL with http://{addr}, or have the command use $SOCKET (or {socket})", s, v)
		}
	}
	for k, v := range s.Env {
		if !envName.MatchString(k) {
			fail("env %q: expected a variable name of letters, digits and _", k)
		}
		if err := Check(v, s.network()); err != nil {
			fail("env %s: %v", k, err)
		}
		switch k {
		case "PORT", "HOST", "SOCKET":
			fail("env %s: the gateway sets %s to the address it allocates; use the {socket}, {addr} or {port} placeholders instead", k, k)
		}
	}
	for _, k := range s.Inherit {
		if !envName.MatchString(k) {
			fail("inherit %q: expected a variable name of letters, digits and _", k)
		}
	}
	if s.Dir != "" {
		if fi, err := os.Stat(s.Dir); err != nil {
			fail("working directory %q: %v", s.Dir, err)
		} else if !fi.IsDir() {
			fail("working directory %q is not a directory", s.Dir)
		}
	}
	if _, err := lookPath(s.Command[0], s.Dir); err != nil {
		fail("command %s: %v", s, err)
	}
	if _, err := s.credential(); err != nil {
		fail("%v", err)
	}
	return errs
}

// credential resolves User and Group (nil when neither is set).
func (s Spec) credential() (*syscall.Credential, error) {
	if s.User == "" && s.Group == "" {
		return nil, nil
	}
	if euid := os.Geteuid(); euid != 0 {
		return nil, fmt.Errorf("user=%q group=%q: running an app as another user needs the gateway to run as root (it runs as uid %d); remove user and group to run the app as the gateway's user", s.User, s.Group, euid)
	}
	c := &syscall.Credential{Groups: []uint32{}} // no supplementary group of root's
	primary := ""
	if s.User != "" {
		u, err := user.Lookup(s.User)
		if err != nil {
			if u, err = user.LookupId(s.User); err != nil {
				return nil, fmt.Errorf("user=%q: no such user", s.User)
			}
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		c.Uid, primary = uint32(uid), u.Gid
	}
	group := primary
	if s.Group != "" {
		g, err := user.LookupGroup(s.Group)
		if err != nil {
			if g, err = user.LookupGroupId(s.Group); err != nil {
				return nil, fmt.Errorf("group=%q: no such group", s.Group)
			}
		}
		group = g.Gid
	}
	gid, _ := strconv.ParseUint(group, 10, 32)
	c.Gid = uint32(gid)
	return c, nil
}

// lookPath finds the program: a name with a slash is taken relative to dir, a bare name is looked up in
// the gateway's PATH.
func lookPath(prog, dir string) (string, error) {
	if strings.Contains(prog, "/") {
		p := prog
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("cannot run %s: %v", prog, err)
		}
		if fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("cannot run %s: not an executable file", prog)
		}
		return filepath.Abs(p) // exec would take a relative path relative to the app's directory again
	}
	p, err := execLookPath(prog)
	if err != nil {
		return "", fmt.Errorf("program %q not found in PATH (%s)", prog, os.Getenv("PATH"))
	}
	return p, nil
}
