package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/switchyard/switchyard/internal/cidr"
	"github.com/switchyard/switchyard/internal/units"
)

// Size is a byte count read from "64KiB", "10MB" or "512". 0 means unlimited where a limit allows it.
type Size int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	if strings.EqualFold(strings.TrimSpace(string(b)), "unlimited") {
		*s = 0
		return nil
	}
	n, err := units.ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) {
	if s == 0 {
		return []byte("unlimited"), nil
	}
	return []byte(units.FormatSize(int64(s))), nil
}

// Duration is a time.Duration read from "10s" or "1m30s".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil || v < 0 {
		return fmt.Errorf("invalid duration %q: expected a non-negative duration such as 10s or 1m30s", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// StatusList is a comma-separated list of HTTP statuses ("404,410").
type StatusList []int

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *StatusList) UnmarshalText(b []byte) error {
	var out StatusList
	for _, f := range strings.Split(string(b), ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 100 || n > 599 {
			return fmt.Errorf("invalid status %q: expected HTTP statuses from 100 to 599 separated by commas, such as 404,410", f)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// PrefixList is a comma-separated list of CIDRs or single addresses ("10.0.0.0/8,192.168.1.7").
type PrefixList []netip.Prefix

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *PrefixList) UnmarshalText(b []byte) error {
	var out PrefixList
	for _, f := range strings.Split(string(b), ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := ParsePrefix(f)
		if err != nil {
			return err
		}
		out = append(out, p)
	}
	*l = out
	return nil
}

// ParsePrefix reads a CIDR ("10.0.0.0/8") or a single address ("192.168.1.7", "::1"), masked to its
// network (internal/cidr: the one reading every setting uses).
func ParsePrefix(s string) (netip.Prefix, error) { return cidr.Parse(s) }

var schemeStart = regexp.MustCompile(`^\s*[A-Za-z][A-Za-z0-9+.-]*:`)

// AppList is a comma-separated list of APP URLs. A comma inside an app's options (?allow=a,b) stays with that
// app: a new app starts only where a URL scheme does.
type AppList []string

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *AppList) UnmarshalText(b []byte) error {
	var out AppList
	for _, f := range strings.Split(string(b), ",") {
		if len(out) > 0 && !schemeStart.MatchString(f) {
			out[len(out)-1] += "," + f
			continue
		}
		if strings.TrimSpace(f) == "" {
			continue
		}
		if !schemeStart.MatchString(f) {
			return fmt.Errorf("invalid app %q: expected a URL such as http://127.0.0.1:8000 or unix:///run/app.sock", f)
		}
		out = append(out, strings.TrimSpace(f))
	}
	*l = out
	return nil
}

// RouteSpec is one PATTERN=APP mount as configured.
type RouteSpec struct {
	Pattern string `yaml:"pattern"`
	App     string `yaml:"app"`
	// Middleware wraps the route's app, first outermost (YAML routes[].middleware; GATEWAY_ROUTES has
	// none).
	Middleware MiddlewareList `yaml:"-"`
	// Run is the app the gateway runs for this route, declared beside it (YAML routes[].run); the route's
	// App names it with the run option. Nil for other routes.
	Run *RunApp `yaml:"-"`
	// Source says where the route was configured, for error messages ("GATEWAY_ROUTES", "x.yaml:12: routes[2]").
	Source string `yaml:"-"`
	// Keys says, for a route of the YAML file, where each of its keys was written: pattern, app, run, each
	// migration key by its option name (canary for the file's canary_percent) and each key under options.
	// Nil for GATEWAY_ROUTES. See Where.
	Keys map[string]Source `yaml:"-"`
}

// String prints the route as PATTERN=APP.
func (r RouteSpec) String() string { return r.Pattern + "=" + r.App }

// FromFile reports whether the route was read from the YAML file (whose key names errors use).
func (r RouteSpec) FromFile() bool { return r.Keys != nil }

// Where names the place a problem with the route's key (an option, a migration key, "pattern" or "app")
// was configured: the line of that key in the file ("gw.yaml:9: routes[0]"), else the line of the app
// (whose URL carries options in its query), else Source.
func (r RouteSpec) Where(key string) string {
	if s, ok := r.Keys[key]; ok {
		return s.String()
	}
	if s, ok := r.Keys["app"]; ok {
		return s.String()
	}
	return r.Source
}

var routeStart = regexp.MustCompile(`^\s*(/|\*\.|[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]+)?(/|=))[^=]*=`)

// RouteList is a comma-separated list of PATTERN=APP mounts ("/api/=http://127.0.0.1:3000?strip_prefix=true").
// A comma inside an app's options stays with that app: a new route starts only where a pattern does.
type RouteList []RouteSpec

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *RouteList) UnmarshalText(b []byte) error {
	var pieces []string
	for _, f := range strings.Split(string(b), ",") {
		if len(pieces) > 0 && !routeStart.MatchString(f) {
			pieces[len(pieces)-1] += "," + f
			continue
		}
		if strings.TrimSpace(f) == "" {
			continue
		}
		pieces = append(pieces, f)
	}
	var out RouteList
	for _, p := range pieces {
		pat, app, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || strings.TrimSpace(pat) == "" || strings.TrimSpace(app) == "" {
			return fmt.Errorf("invalid route %q: expected PATTERN=APP such as /api/=http://127.0.0.1:3000", p)
		}
		out = append(out, RouteSpec{Pattern: strings.TrimSpace(pat), App: strings.TrimSpace(app)})
	}
	*l = out
	return nil
}

// unmarshalListYAML lets a list take a YAML sequence ([404, 410]) as well as the scalar form the environment
// uses ("404,410"): a sequence is joined with commas and read by the same parser, so both forms give the
// same errors.
func unmarshalListYAML(node *yaml.Node, into interface{ UnmarshalText([]byte) error }) error {
	switch node.Kind {
	case yaml.ScalarNode:
		return into.UnmarshalText([]byte(node.Value))
	case yaml.SequenceNode:
		parts := make([]string, 0, len(node.Content))
		for _, n := range node.Content {
			if n.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: expected a list of plain values", n.Line)
			}
			parts = append(parts, n.Value)
		}
		return into.UnmarshalText([]byte(strings.Join(parts, ",")))
	}
	return fmt.Errorf("line %d: expected a list or a comma-separated string", node.Line)
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *StatusList) UnmarshalYAML(node *yaml.Node) error { return unmarshalListYAML(node, l) }

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *PrefixList) UnmarshalYAML(node *yaml.Node) error { return unmarshalListYAML(node, l) }

// UnmarshalYAML implements yaml.Unmarshaler. Apps in a YAML sequence are taken one per item, so an app
// may contain any character.
func (l *AppList) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind == yaml.SequenceNode {
		var out AppList
		for _, n := range node.Content {
			if n.Kind != yaml.ScalarNode || !schemeStart.MatchString(n.Value) {
				return fmt.Errorf("line %d: invalid app %q: expected a URL such as http://127.0.0.1:8000", n.Line, n.Value)
			}
			out = append(out, strings.TrimSpace(n.Value))
		}
		*l = out
		return nil
	}
	return unmarshalListYAML(node, l)
}
