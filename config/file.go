package config

import (
	"encoding"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/switchyard/switchyard/internal/suggest"
)

// Source says where one setting's value came from: an environment variable, or a key of the YAML file.
// The zero Source is the built-in default.
type Source struct {
	// Var is the environment variable the value came from ("" when it did not come from the environment).
	Var string
	// File and Line locate the key in the YAML file; Key is the key as the file spells it.
	File string
	Line int
	Key  string
}

// String names the source the way a user finds it: "GATEWAY_PRIMARY", "gw.yaml:3: primary" or "default".
func (s Source) String() string {
	switch {
	case s.Var != "":
		return s.Var
	case s.File != "":
		return fmt.Sprintf("%s:%d: %s", s.File, s.Line, s.Key)
	}
	return "default"
}

// Override records an environment variable that replaced what the YAML file said for the same setting,
// so that a user editing the file learns why the edit does not run.
type Override struct {
	Var  string // the variable that won
	File string // the file whose key lost
	Line int    // the line of that key
	Key  string // the key as written
	// Routes is the number of routes the file listed, for GATEWAY_ROUTES (which replaces them all).
	Routes int
}

// String is the log line: "GATEWAY_ROUTES overrides the 3 routes of gw.yaml (line 7)".
func (o Override) String() string {
	if o.Var == "GATEWAY_ROUTES" {
		n := "the " + strconv.Itoa(o.Routes) + " routes"
		if o.Routes == 1 {
			n = "the route"
		}
		return fmt.Sprintf("%s overrides %s of %s (line %d)", o.Var, n, o.File, o.Line)
	}
	return fmt.Sprintf("%s overrides %s of %s (line %d)", o.Var, o.Key, o.File, o.Line)
}

// Name is how messages about the setting whose variable is variable (GATEWAY_PRIMARY) name it: the
// variable when its value came from the environment or the defaults, the file, line and key when it came
// from the file. A value read from the file is never blamed on a variable the user did not set.
func (c Config) Name(variable string) string {
	if s, ok := c.Sources[variable]; ok && s.File != "" {
		return s.String()
	}
	return variable
}

// Ref is how a hint in a message about the setting of like names the setting of variable: its file key
// when like came from the file ("set primary"), the variable otherwise ("set GATEWAY_PRIMARY").
func (c Config) Ref(variable, like string) string {
	if s, ok := c.Sources[like]; ok && s.File != "" {
		for k, v := range configKeys.vars {
			if v == variable {
				return k
			}
		}
	}
	return variable
}

// fileRoute is one item of the YAML file's routes: the route, its options and migration keys. The rest
// of the file are the settings of Config, by their yaml tags.
type fileRoute struct {
	Pattern string            `yaml:"pattern"`
	App     string            `yaml:"app"`
	Options map[string]string `yaml:"options"`
	// Middleware wraps this route's app (see MiddlewareList).
	Middleware MiddlewareList `yaml:"middleware"`
	// Migration keys (see package migration): folded into the app's options, the environment form.
	Old              string   `yaml:"old"`
	Stage            string   `yaml:"stage"`
	CanaryPercent    *float64 `yaml:"canary_percent"`
	Sticky           string   `yaml:"sticky"`
	ShadowMethods    []string `yaml:"shadow_methods"`
	ShadowIgnore     []string `yaml:"shadow_ignore"`
	ShadowHeaders    []string `yaml:"shadow_headers"`
	NegativeCache    int      `yaml:"negative_cache"`
	NegativeCacheTTL string   `yaml:"negative_cache_ttl"`
	// Run declares the app the gateway runs for this route (see RunApp).
	Run routeRun `yaml:"run"`
}

// routeRun is a route's run key as read from the file.
type routeRun struct{ app *RunApp }

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *routeRun) UnmarshalYAML(node *yaml.Node) error {
	a, err := runAppYAML(node)
	if err != nil {
		return err
	}
	r.app = &a
	return nil
}

// fileKeys maps the yaml keys of a struct type to field indexes, in declaration order.
type fileKeys struct {
	names []string
	index map[string]int
	vars  map[string]string // yaml key -> env variable (Config only)
	// other says, for a key that is nothing like a valid one, where it may belong instead ("%[1]s" is the
	// key): a route's app options go under options.
	other string
}

func keysOf(t reflect.Type) fileKeys {
	k := fileKeys{index: map[string]int{}, vars: map[string]string{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		k.names = append(k.names, name)
		k.index[name] = i
		if v := f.Tag.Get("env"); v != "" {
			k.vars[name] = v
		}
	}
	return k
}

var (
	configKeys = func() fileKeys {
		k := keysOf(reflect.TypeOf(Config{}))
		k.names = append(k.names, "routes")
		return k
	}()
	routeKeys = func() fileKeys {
		k := keysOf(reflect.TypeOf(fileRoute{}))
		k.other = "if %[1]s is an app option, it goes under options (options: {%[1]s: ...}) or in the app URL's query"
		return k
	}()
)

// fileError is one problem in the YAML file, located by line and, where it concerns a key, by the path
// of that key as the user wrote it ("routes[1].canary").
type fileError struct {
	file string
	line int
	path string
	msg  string
}

func (e fileError) Error() string {
	if e.path == "" {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return fmt.Sprintf("%s:%d: %s: %s", e.file, e.line, e.path, e.msg)
}

// fileSettings is what a YAML file set: the settings by variable, with their lines, and its routes.
type fileSettings struct {
	set        map[string]Source // by variable
	routes     []RouteSpec
	routesLine int  // line of the routes key, 0 when absent
	hasRoutes  bool // routes key present (even empty: an empty list removes no route but is set)
	middleware bool
}

// yamlLine matches the line prefix yaml's syntax errors carry.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// applyFile reads the YAML file at path into cfg. Every problem is reported in the words of the file: its
// name, the line, the key as written, what the place accepts; never a Go type.
func applyFile(cfg *Config, path string, data []byte) (fileSettings, Errors) {
	fs := fileSettings{set: map[string]Source{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := err.Error()
		line := 0
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = msg[len(m[0]):]
		} else {
			msg = strings.TrimPrefix(msg, "yaml: ")
		}
		if line == 0 {
			return fs, Errors{fmt.Errorf("%s: not valid YAML: %s", path, msg)}
		}
		return fs, Errors{fileError{path, line, "", "not valid YAML: " + msg}}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 { // an empty file is an empty configuration
		return fs, nil
	}
	root := resolve(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return fs, nil
	}
	if root.Kind != yaml.MappingNode {
		return fs, Errors{fileError{path, root.Line, "", "expected a mapping of settings, such as \"primary: http://127.0.0.1:8000\""}}
	}
	var errs Errors
	dst := reflect.ValueOf(cfg).Elem()
	forEachKey(path, root, "", configKeys, &errs, func(key string, k, v *yaml.Node) {
		if key == "routes" {
			fs.hasRoutes, fs.routesLine = true, k.Line
			fs.routes = readRoutes(path, v, &errs)
			return
		}
		f := dst.Field(configKeys.index[key])
		if err := decodeNode(v, f); err != nil {
			errs = append(errs, locate(path, v, k.Value, err))
			if key == "run" {
				cfg.runUnread = runKeyNames(v) // (URLs naming them are not reported as naming none)
			}
			return
		}
		fs.set[configKeys.vars[key]] = Source{File: path, Line: k.Line, Key: k.Value}
		if key == "middleware" {
			fs.middleware = true
		}
	})
	return fs, errs
}

// forEachKey walks a mapping node, reporting unknown and repeated keys, and calls fn for every known one.
func forEachKey(path string, m *yaml.Node, at string, keys fileKeys, errs *Errors, fn func(key string, k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], resolve(m.Content[i+1])
		where := joinPath(at, k.Value)
		if k.Kind != yaml.ScalarNode {
			*errs = append(*errs, fileError{path, k.Line, at, "expected a plain key such as " + keys.names[0]})
			continue
		}
		if _, ok := keys.index[k.Value]; !ok && !(k.Value == "routes" && containsString(keys.names, "routes")) {
			*errs = append(*errs, fileError{path, k.Line, where, unknownKey(k.Value, keys)})
			continue
		}
		if first, dup := seen[k.Value]; dup {
			*errs = append(*errs, fileError{path, k.Line, where, fmt.Sprintf("given twice (first on line %d); the file must say it once", first)})
			continue
		}
		seen[k.Value] = k.Line
		fn(k.Value, k, v)
	}
}

func joinPath(at, key string) string {
	if at == "" {
		return key
	}
	return at + "." + key
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unknownKey says a key is not valid at its place, suggests the key the user most likely meant, and
// lists the valid ones.
func unknownKey(key string, keys fileKeys) string {
	msg := "unknown key"
	if s := suggestKey(key, keys); s != "" {
		msg += "; did you mean " + s + "?"
	} else if keys.other != "" {
		msg += "; " + fmt.Sprintf(keys.other, key)
	}
	return msg + " (valid here: " + strings.Join(keys.names, ", ") + ")"
}

// suggest finds the valid key closest to a misspelt one: the key of a variable name written as a key
// (GATEWAY_PRIMARY: primary), a case or separator variant, a key the word begins (canary:
// canary_percent), or one within a small edit distance.
func suggestKey(key string, keys fileKeys) string {
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("-", "_", " ", "_").Replace(s)) }
	for k, v := range keys.vars {
		if strings.EqualFold(key, v) {
			return k
		}
	}
	if s := suggest.Closest(key, keys.names); s != "" {
		return s
	}
	// Several keys start alike and none is nearer: name them all.
	nk := norm(key)
	var prefixed []string
	for _, k := range keys.names {
		if len(nk) >= 3 && (strings.HasPrefix(k, nk) || strings.HasPrefix(nk, k)) {
			prefixed = append(prefixed, k)
		}
	}
	sort.Strings(prefixed)
	return strings.Join(prefixed, " or ")
}

// readRoutes reads the routes key: a list of mappings with pattern, app and the optional keys.
func readRoutes(path string, v *yaml.Node, errs *Errors) []RouteSpec {
	if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		*errs = append(*errs, fileError{path, v.Line, "routes", "expected a list of routes, each a mapping such as {pattern: /api/, app: http://127.0.0.1:3000}"})
		return nil
	}
	out := []RouteSpec{}
	for i, item := range v.Content {
		item = resolve(item)
		at := fmt.Sprintf("routes[%d]", i)
		if item.Kind != yaml.MappingNode {
			*errs = append(*errs, fileError{path, item.Line, at, "expected a mapping such as {pattern: /api/, app: http://127.0.0.1:3000}"})
			continue
		}
		var r fileRoute
		rv := reflect.ValueOf(&r).Elem()
		before := len(*errs)
		keys := map[string]Source{}
		forEachKey(path, item, at, routeKeys, errs, func(key string, k, v *yaml.Node) {
			if err := decodeNode(v, rv.Field(routeKeys.index[key])); err != nil {
				*errs = append(*errs, locate(path, v, at+"."+k.Value, err))
			}
			keys[optionOfRouteKey(key)] = Source{File: path, Line: k.Line, Key: at}
			if key == "options" && v.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(v.Content); i += 2 {
					keys[v.Content[i].Value] = Source{File: path, Line: v.Content[i].Line, Key: at}
				}
			}
		})
		if len(*errs) > before {
			continue
		}
		src := fmt.Sprintf("%s:%d: %s", path, item.Line, at)
		if r.Pattern == "" || r.App == "" {
			*errs = append(*errs, fmt.Errorf("%s: expected both pattern and app, such as {pattern: /api/, app: http://127.0.0.1:3000}", src))
			continue
		}
		app := r.App
		var run *RunApp
		if r.Run.app != nil {
			a := *r.Run.app
			if a.Name == "" {
				a.Name = routeRunName(r.Pattern)
			}
			a.Source = src + ".run"
			if _, dup := r.Options[RunOption]; dup || strings.Contains(app, RunOption+"=") {
				*errs = append(*errs, fmt.Errorf("%s: the route declares its run app with the run key and names one with the %s option too: give one", src, RunOption))
				continue
			}
			if r.Options == nil {
				r.Options = map[string]string{}
			}
			r.Options[RunOption] = a.Name
			run = &a
		}
		if err := foldMigrationKeys(&r); err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %v", src, err))
			continue
		}
		if len(r.Options) > 0 {
			q := make([]string, 0, len(r.Options))
			for k, v := range r.Options {
				q = append(q, url.QueryEscape(k)+"="+url.QueryEscape(v))
			}
			sort.Strings(q)
			sep := "?"
			if strings.Contains(app, "?") {
				sep = "&"
			}
			app += sep + strings.Join(q, "&")
		}
		out = append(out, RouteSpec{Pattern: r.Pattern, App: app, Middleware: r.Middleware, Run: run, Source: src, Keys: keys})
	}
	return out
}

// optionOfRouteKey is the app option a file route's key becomes (foldMigrationKeys): canary_percent is the
// canary option; the other keys keep their names.
func optionOfRouteKey(key string) string {
	if key == "canary_percent" {
		return "canary"
	}
	return key
}

// locate turns a decoding error into a fileError. Errors of the list types start with "line N: " (an
// item's own line): that line is used instead of the value's.
func locate(path string, v *yaml.Node, at string, err error) error {
	msg, line := err.Error(), v.Line
	if m := regexp.MustCompile(`^line (\d+): `).FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	return fileError{path, line, at, msg}
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

type yamlUnmarshaler interface{ UnmarshalYAML(*yaml.Node) error }

// decodeNode stores a YAML value into a settings field. The errors say what the place expects in the
// file's terms (a duration such as 10s, a whole number, true or false, a list), never a Go type.
func decodeNode(v *yaml.Node, f reflect.Value) error {
	isNull := v.Kind == yaml.ScalarNode && v.Tag == "!!null"
	if f.Kind() == reflect.Pointer {
		if isNull {
			f.Set(reflect.Zero(f.Type()))
			return nil
		}
		p := reflect.New(f.Type().Elem())
		if err := decodeNode(v, p.Elem()); err != nil {
			return err
		}
		f.Set(p)
		return nil
	}
	if u, ok := f.Addr().Interface().(yamlUnmarshaler); ok {
		return u.UnmarshalYAML(v)
	}
	scalar := func(expected string) (string, error) {
		if v.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("expected %s, not a %s", expected, kindWord(v))
		}
		if isNull {
			return "", nil
		}
		return v.Value, nil
	}
	if u, ok := f.Addr().Interface().(encoding.TextUnmarshaler); ok {
		s, err := scalar("a single value")
		if err != nil {
			return err
		}
		return u.UnmarshalText([]byte(s))
	}
	switch f.Kind() {
	case reflect.String:
		s, err := scalar("a text value")
		if err != nil {
			return err
		}
		f.SetString(s)
	case reflect.Bool:
		s, err := scalar("true or false")
		if err != nil {
			return err
		}
		b, perr := strconv.ParseBool(strings.ToLower(s))
		if perr != nil {
			return fmt.Errorf("%q: expected true or false", s)
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int64:
		s, err := scalar("a whole number")
		if err != nil {
			return err
		}
		n, perr := strconv.ParseInt(s, 10, 64)
		if perr != nil {
			return fmt.Errorf("%q: expected a whole number such as 10", s)
		}
		f.SetInt(n)
	case reflect.Float64:
		s, err := scalar("a number")
		if err != nil {
			return err
		}
		x, perr := strconv.ParseFloat(s, 64)
		if perr != nil {
			return fmt.Errorf("%q: expected a number such as 10 or 2.5", s)
		}
		f.SetFloat(x)
	case reflect.Slice:
		if isNull {
			f.Set(reflect.Zero(f.Type()))
			return nil
		}
		if v.Kind != yaml.SequenceNode {
			return fmt.Errorf("expected a list such as [a, b], not a %s", kindWord(v))
		}
		out := reflect.MakeSlice(f.Type(), len(v.Content), len(v.Content))
		for i, item := range v.Content {
			if err := decodeNode(resolve(item), out.Index(i)); err != nil {
				return fmt.Errorf("line %d: item %d: %v", item.Line, i+1, err)
			}
		}
		f.Set(out)
	case reflect.Map:
		if isNull {
			f.Set(reflect.Zero(f.Type()))
			return nil
		}
		if v.Kind != yaml.MappingNode {
			return fmt.Errorf("expected a mapping of names to values such as {strip_prefix: true}, not a %s", kindWord(v))
		}
		out := reflect.MakeMapWithSize(f.Type(), len(v.Content)/2)
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], resolve(v.Content[i+1])
			if k.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: expected a plain name", k.Line)
			}
			e := reflect.New(f.Type().Elem()).Elem()
			if err := decodeNode(val, e); err != nil {
				return fmt.Errorf("line %d: %s: %v", val.Line, k.Value, err)
			}
			out.SetMapIndex(reflect.ValueOf(k.Value).Convert(f.Type().Key()), e)
		}
		f.Set(out)
	default:
		return fmt.Errorf("this key cannot be set in the file")
	}
	return nil
}

// kindWord names a YAML node's kind for messages.
func kindWord(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "single value"
}

// Setting is one setting as `gateway check` shows it: its variable, its file key, the value that runs and
// where that value came from.
type Setting struct {
	Variable string // GATEWAY_PRIMARY
	Key      string // primary ("" when the file cannot set it)
	Value    string // as the variable would spell it; "" when empty
	From     string // "GATEWAY_PRIMARY", "gw.yaml:3: primary" or "default"
}

// Settings lists every setting in declaration order with its value and its source.
func (c Config) Settings() []Setting {
	keyOf := map[string]string{}
	for k, v := range configKeys.vars {
		keyOf[v] = k
	}
	keyOf["GATEWAY_ROUTES"] = "routes"
	var out []Setting
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		variable := t.Field(i).Tag.Get("env")
		if variable == "" {
			continue
		}
		out = append(out, Setting{Variable: variable, Key: keyOf[variable], Value: formatValue(v.Field(i)), From: c.Sources[variable].String()})
	}
	return out
}

// formatValue prints a setting's value in the environment's form.
func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case RouteList:
		if len(x) == 1 {
			return "1 route"
		}
		return strconv.Itoa(len(x)) + " routes"
	case encoding.TextMarshaler:
		b, err := x.MarshalText()
		if err == nil {
			return string(b)
		}
	}
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}
