package config

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goWords are what a message leaks when it speaks Go instead of the file's words.
var goWords = regexp.MustCompile(`config\.|fileRoute|float64|int64|\bint\b|map\[|\[\]string|!!(str|int|float|bool|map|seq)|unmarshal|reflect|struct`)

func TestFileErrorsSpeakTheUsersWords(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // every one must appear in the error
		not  []string // none may appear
	}{
		{"a YAML syntax error names the file and the line", "primary: http://x\nroutes:\n  - pattern: /a/\n   app: http://y\n",
			nil, []string{"gw.yaml:4: not valid YAML"}, nil},
		{"a file that is not a mapping says what is expected", "- primary\n", nil,
			[]string{"gw.yaml:1: expected a mapping of settings"}, nil},
		{"a misspelt key gets the key as written, a suggestion and the valid keys", "primary: http://x\nPrimery: http://y\n", nil,
			[]string{`gw.yaml:2: Primery: unknown key; did you mean primary?`, "valid here: addr, primary, delegates"}, nil},
		{"a variable name written as a key suggests the key", "GATEWAY_PRIMARY: http://x\n", nil,
			[]string{`gw.yaml:1: GATEWAY_PRIMARY: unknown key; did you mean primary?`}, nil},
		{"a hyphenated key suggests the underscored one", "max-body-size: 1MiB\n", nil,
			[]string{`gw.yaml:1: max-body-size: unknown key; did you mean max_body_size?`}, nil},
		{"a key with nothing close lists the valid keys only", "colour: blue\n", nil,
			[]string{`gw.yaml:1: colour: unknown key (valid here: addr,`}, []string{"did you mean"}},
		{"canary in a route suggests canary_percent and lists the route keys", "routes:\n  - pattern: /shop/\n    app: http://new:3000\n    stage: canary\n    canary: 10\n", nil,
			[]string{`gw.yaml:5: routes[0].canary: unknown key; did you mean canary_percent?`, "(valid here: pattern, app, options, middleware, old, stage, canary_percent"}, nil},
		{"a key given twice names both lines", "primary: http://x\naddr: :1\nprimary: http://y\n", nil,
			[]string{"gw.yaml:3: primary: given twice (first on line 1)"}, nil},
		{"a word where a number goes", "max_conns: lots\n", nil,
			[]string{`gw.yaml:1: max_conns: "lots": expected a whole number`}, nil},
		{"a word where true or false goes", "admin_pprof: maybe\n", nil,
			[]string{`gw.yaml:1: admin_pprof: "maybe": expected true or false`}, nil},
		{"a bad duration", "idle_timeout: forever\n", nil,
			[]string{`gw.yaml:1: idle_timeout: invalid duration "forever"`, "such as 10s"}, nil},
		{"a bad size", "max_body_size: huge\n", nil,
			[]string{`gw.yaml:1: max_body_size:`}, nil},
		{"a list where one value goes", "primary: [http://a, http://b]\n", nil,
			[]string{"gw.yaml:1: primary: expected a text value, not a list"}, nil},
		{"a bad status in a list names the key and the status", "pass_status:\n  - 404\n  - 999\n", nil,
			[]string{`gw.yaml:2: pass_status: invalid status "999"`}, nil},
		{"routes that are not a list", "routes: {pattern: /a/, app: http://x}\n", nil,
			[]string{"gw.yaml:1: routes: expected a list of routes"}, nil},
		{"a route that is not a mapping", "routes:\n  - /a/=http://x\n", nil,
			[]string{"gw.yaml:2: routes[0]: expected a mapping such as {pattern: /api/"}, nil},
		{"a route without an app", "routes:\n  - pattern: /a/\n", nil,
			[]string{"gw.yaml:2: routes[0]: expected both pattern and app"}, nil},
		{"an app option written as a route key says where it goes", "routes:\n  - pattern: /a/\n    app: http://x\n    strip_prefix: true\n", nil,
			[]string{`gw.yaml:4: routes[0].strip_prefix: unknown key; if strip_prefix is an app option, it goes under options (options: {strip_prefix: ...}) or in the app URL's query (valid here: pattern, app, options`}, nil},
		{"route options that are not a mapping", "routes:\n  - pattern: /a/\n    app: http://x\n    options: [strip_prefix]\n", nil,
			[]string{"gw.yaml:4: routes[0].options: expected a mapping of names to values"}, nil},
		{"a canary percent that is not a number", "routes:\n  - pattern: /a/\n    app: http://x\n    canary_percent: half\n", nil,
			[]string{`gw.yaml:4: routes[0].canary_percent: "half": expected a number`}, nil},
		{"shadow methods that are not a list", "routes:\n  - pattern: /a/\n    app: http://x\n    shadow_methods: {GET: 1}\n", nil,
			[]string{"gw.yaml:4: routes[0].shadow_methods: expected a list such as [a, b], not a mapping"}, nil},
		{"a file primary is never blamed on GATEWAY_PRIMARY", "addr: :1\nprimary: 127.0.0.1:8000\n", nil,
			[]string{`gw.yaml:2: primary="127.0.0.1:8000": expected an app URL`}, []string{"GATEWAY_PRIMARY"}},
		{"a hint about a file setting names the file key", "delegates: [http://old:1]\n", nil,
			[]string{`gw.yaml:1: delegates="http://old:1": delegates need a primary: set primary`}, []string{"GATEWAY_"}},
		{"a variable's bad value is still blamed on the variable", "primary: http://x\n", map[string]string{"GATEWAY_PRIMARY": "nope"},
			[]string{`GATEWAY_PRIMARY="nope"`}, []string{"gw.yaml"}},
		{"a file setting out of range names the file", "max_header_size: 10\n", nil,
			[]string{"gw.yaml:1: max_header_size=10: expected a size from 1KiB to 16MiB"}, []string{"GATEWAY_MAX_HEADER_SIZE"}},
		{"a misspelt middleware key gets a suggestion", "middleware:\n  - {name: gzip, parms: {min_size: 1KiB}}\n", nil,
			[]string{`gw.yaml:2: middleware: unknown key "parms"; did you mean params? (valid here: name, params)`}, nil},
		{"every problem of the file at once", "primery: x\nmax_conns: lots\nroutes:\n  - pattern: /a/\n    app: http://x\n    canary: 1\n", nil,
			[]string{"gw.yaml:1: primery", "gw.yaml:2: max_conns", "gw.yaml:6: routes[0].canary"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"GATEWAY_CONFIG": "gw.yaml"}
			for k, v := range tt.env {
				env[k] = v
			}
			_, err := Load(env, files(map[string]string{"gw.yaml": tt.yaml}))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(msg, n) {
					t.Errorf("error has %q:\n%s", n, msg)
				}
			}
			if m := goWords.FindString(msg); m != "" {
				t.Errorf("error speaks Go (%q):\n%s", m, msg)
			}
		})
	}
}

func TestSourcesAndOverrides(t *testing.T) {
	file := "addr: 127.0.0.1:9000\nprimary: http://file:1\nidle_timeout: 5s\nroutes:\n  - {pattern: /a/, app: http://a:1}\n  - {pattern: /b/, app: http://b:1}\n  - {pattern: /c/, app: http://c:1}\n"
	env := map[string]string{
		"GATEWAY_CONFIG":        "gw.yaml",
		"GATEWAY_ROUTES":        "/x/=http://x:1",
		"GATEWAY_PRIMARY":       "http://env:1",
		"GATEWAY_MAX_BODY_SIZE": "1MiB", // not in the file: no override
	}
	cfg, err := Load(env, files(map[string]string{"gw.yaml": file}))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, o := range cfg.Overrides {
		lines = append(lines, o.String())
	}
	want := []string{
		"GATEWAY_PRIMARY overrides primary of gw.yaml (line 2)",
		"GATEWAY_ROUTES overrides the 3 routes of gw.yaml (line 4)",
	}
	if d := cmp.Diff(want, lines); d != "" {
		t.Errorf("overrides (-want +got):\n%s", d)
	}
	from := map[string]string{}
	for _, s := range cfg.Settings() {
		from[s.Variable] = s.From
	}
	for v, w := range map[string]string{
		"GATEWAY_ADDR":          "gw.yaml:1: addr",
		"GATEWAY_PRIMARY":       "GATEWAY_PRIMARY",
		"GATEWAY_IDLE_TIMEOUT":  "gw.yaml:3: idle_timeout",
		"GATEWAY_MAX_BODY_SIZE": "GATEWAY_MAX_BODY_SIZE",
		"GATEWAY_ROUTES":        "GATEWAY_ROUTES",
		"GATEWAY_LOG_FORMAT":    "default",
	} {
		if from[v] != w {
			t.Errorf("%s comes from %q, want %q", v, from[v], w)
		}
	}

	// Without the variables, nothing is overridden and the routes come from their file lines.
	cfg, err = Load(map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, files(map[string]string{"gw.yaml": file}))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Overrides) != 0 {
		t.Errorf("overrides without variables: %v", cfg.Overrides)
	}
	if cfg.Routes[2].Source != "gw.yaml:7: routes[2]" {
		t.Errorf("third route source %q", cfg.Routes[2].Source)
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ key, want string }{
		{"canary", "canary_percent"},
		{"stage", "stage"},
		{"patern", "pattern"},
		{"Shadow-Ignore", "shadow_ignore"},
		{"xyz", ""},
		{"shadow", "shadow_headers or shadow_ignore or shadow_methods"},
	}
	for _, tt := range tests {
		if got := suggestKey(tt.key, routeKeys); got != tt.want {
			t.Errorf("suggestKey(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
}

// Variables' type errors say what is expected, not which Go function failed.
func TestVariableTypeErrorsSayWhatIsExpected(t *testing.T) {
	_, err := Load(map[string]string{"GATEWAY_MAX_CONNS": "lots", "GATEWAY_ADMIN_PPROF": "maybe"}, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{`GATEWAY_MAX_CONNS="lots": expected a whole number`, `GATEWAY_ADMIN_PPROF="maybe": expected true or false`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "strconv") {
		t.Errorf("error names strconv:\n%v", err)
	}
}
