package plan

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/middleware"
	"github.com/switchyard/switchyard/migration"
)

// load reads env (and, under GATEWAY_CONFIG=gw.yaml, file) as the gateway does, then parses the plan.
func load(t *testing.T, env map[string]string, file string) (*Plan, error) {
	t.Helper()
	cfg, err := config.Load(env, func(string) ([]byte, error) { return []byte(file), nil })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return Parse(cfg, builtin.Registry(nil, nil))
}

// A configuration with many problems gets all of them at once, each once, each naming where it was
// configured: the variable, or the file line of the very key at fault.
func TestParseReportsEveryProblemAtOnceWithItsSource(t *testing.T) {
	file := `primary: http://127.0.0.1:8000
delegates: [http://127.0.0.1:8001]
routes:
  - pattern: /a/*
    app: http://127.0.0.1:3000
  - pattern: /shop/
    app: http://127.0.0.1:3001
    options:
      cascade: "true"
      strip_prefix: maybe
  - pattern: /new/
    app: http://127.0.0.1:3002
    old: http://127.0.0.1:8002
    stage: canary
    canary_percent: 150
  - pattern: /shop
    app: http://127.0.0.1:3003
  - pattern: /plain/
    app: status:200
    options: {https_redirect: "false"}
  - pattern: /half/
    app: http://127.0.0.1:3004
    stage: canary
    old: http://127.0.0.1:8004
  - pattern: /fine/
    app: http://127.0.0.1:3005
`
	tests := []struct {
		name string
		env  map[string]string
		file string
		want []string // every error, in order
	}{
		{"the file's problems name the lines of their keys", map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, file, []string{
			`gw.yaml:4: routes[0]: route pattern "/a/*": path "/a/*" may not contain`,
			`gw.yaml:10: routes[1]: route /shop/: app "http://127.0.0.1:3001?cascade=true&strip_prefix=maybe": option strip_prefix="maybe": expected true or false`,
			`gw.yaml:15: routes[2]: route /new/: canary_percent="150": expected a percentage from 0 to 100`,
			`gw.yaml:16: routes[3]: route "/shop=http://127.0.0.1:3003" repeats pattern /shop/ of /shop/=http://127.0.0.1:3001?cascade=true&strip_prefix=maybe`,
			`gw.yaml:20: routes[4]: route /plain/: app "status:200?https_redirect=false": option https_redirect=false: there is no plain HTTP listener (GATEWAY_HTTP_ADDR)`,
			`gw.yaml:23: routes[5]: route /half/: stage=canary needs canary_percent, the new app's share in percent`,
		}},
		{"the environment's problems name the variables", map[string]string{
			"GATEWAY_PRIMARY":   "http://127.0.0.1:8000?name=same",
			"GATEWAY_DELEGATES": "http://127.0.0.1:8001?name=same,ftp://old",
			"GATEWAY_STAGE":     "shadow",
			"GATEWAY_ROUTES":    "/y/=status:200?stage=shadow&old=status%3A200,/z/=http://127.0.0.1:2?ready=perhaps&pass_header=a%20b,/w/=http://127.0.0.1:3?stage=sideways",
		}, "", []string{
			`GATEWAY_DELEGATES[1]: app "ftp://old": unknown scheme "ftp"`,
			`GATEWAY_ROUTES: route /y/: the new app and the old app are both named "status:200"`,
			`GATEWAY_ROUTES: route /z/: app "http://127.0.0.1:2?ready=perhaps&pass_header=a%20b": option pass_header="a b": expected a header name`,
			`GATEWAY_ROUTES: route /z/: app "http://127.0.0.1:2?ready=perhaps&pass_header=a%20b": option ready="perhaps": expected true or false`,
			`GATEWAY_ROUTES: route /w/: stage="sideways": expected one of`,
		}},
		{"a bad migration key hides no problem of the old app", map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, `routes:
  - pattern: /shop/
    app: http://127.0.0.1:3000
    old: htp://127.0.0.1:8000
    stage: canary
    canary_percent: 150
`, []string{
			`gw.yaml:6: routes[0]: route /shop/: canary_percent="150": expected a percentage from 0 to 100`,
			`gw.yaml:4: routes[0]: route /shop/ (old): app "htp://127.0.0.1:8000": unknown scheme "htp"`,
		}},
		{"a pair with one name", map[string]string{
			"GATEWAY_PRIMARY": "http://127.0.0.1:8000?name=same", "GATEWAY_DELEGATES": "http://127.0.0.1:8001?name=same", "GATEWAY_STAGE": "shadow",
		}, "", []string{
			`GATEWAY_STAGE="shadow": the primary (the new app) and the first delegate (the old app) are both named "same"`,
		}},
		{"a stage without its pair", map[string]string{"GATEWAY_PRIMARY": "http://127.0.0.1:8000", "GATEWAY_STAGE": "shadow"}, "", []string{
			`GATEWAY_STAGE="shadow": a stage needs GATEWAY_PRIMARY (the new app) and GATEWAY_DELEGATES (the first is the old app)`,
		}},
		{"ACME without a name", map[string]string{"GATEWAY_ACME": "true", "GATEWAY_ROUTES": "/=http://127.0.0.1:3000"}, "", []string{
			`GATEWAY_ACME=true: no name to get a certificate for`,
		}},
		// One label for the same instances balanced by other rules, or for other instances: their health
		// would be reported as one. The same instances on two routes with other route options are fine.
		{"one label, other balancing rules", map[string]string{
			"GATEWAY_PRIMARY": "http://127.0.0.1:3001|http://127.0.0.1:3002",
			"GATEWAY_ROUTES":  "/api/=http://127.0.0.1:3001|http://127.0.0.1:3002?strip_prefix=true,/b/=http://127.0.0.1:3001|http://127.0.0.1:3002?max_fails=3,/c/=http://127.0.0.1:3003?breaker=true&name=c,/d/=http://127.0.0.1:3004?breaker=true&name=c",
		}, "", []string{
			`GATEWAY_ROUTES: route /b/: app "http://127.0.0.1:3001|http://127.0.0.1:3002?max_fails=3" has the label "127.0.0.1:3001|127.0.0.1:3002" of the app of GATEWAY_PRIMARY, with other instances or balancing options`,
			`GATEWAY_ROUTES: route /d/: app "http://127.0.0.1:3004?breaker=true&name=c" has the label "c" of the app of GATEWAY_ROUTES: route /c/, with other instances or balancing options: the metrics and /api/upstreams would show one's instance health for the other's; give each its own name= option (such as name=d)`,
		}},
		{"root options on the primary", map[string]string{"GATEWAY_PRIMARY": "http://127.0.0.1:8000?encoded_slash=true&prefix_header=script_name"}, "", []string{
			`GATEWAY_PRIMARY: app "http://127.0.0.1:8000?encoded_slash=true&prefix_header=script_name": option encoded_slash applies to routes`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.env, tt.file)
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want config.Errors", err)
			}
			if len(errs) != len(tt.want) {
				t.Errorf("%d errors, want %d:\n%v", len(errs), len(tt.want), err)
			}
			for i, w := range tt.want {
				if i < len(errs) && !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("error %d:\n  %v\nwant it to start\n  %s", i, errs[i], w)
				}
			}
		})
	}
}

// Every field of a route is typed once: pattern and host, the app with its label and options, the old
// app, strip, cascade, stage, middleware and where it came from.
func TestParseTypesEveryRoute(t *testing.T) {
	file := `primary: http://127.0.0.1:8000
delegates: [http://127.0.0.1:8001?name=legacy]
stage: shadow
routes:
  - pattern: shop.example.com/api/
    app: http://127.0.0.1:3000?name=api
    options: {strip_prefix: "true", cascade: "true", pass_header: x-switchyard-pass, timeout: 5s}
    middleware: [{name: gzip}]
  - pattern: /new/
    app: http://127.0.0.1:3001
    old: uwsgi://127.0.0.1:8002
    stage: canary
    canary_percent: 10
  - pattern: "*.example.com/"
    app: status:403
`
	p, err := load(t, map[string]string{"GATEWAY_CONFIG": "gw.yaml", "GATEWAY_ACME": "true"}, file)
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		Pattern, Host, Mount, App, Name, Options, Old, Source string
		Strip, Cascade                                        bool
		Stage                                                 migration.Stage
		Middleware                                            []middleware.Spec
	}
	var got []route
	for _, r := range p.Routes {
		x := route{Pattern: r.Pattern.String(), Host: r.Host(), Mount: r.Mount(), App: r.App.Target.Raw, Name: r.App.Name,
			Options: r.App.Target.Options.Encode(), Source: r.Source, Strip: r.App.Strip, Cascade: r.Cascade, Stage: r.Stage.Stage, Middleware: r.Middleware}
		if r.Old != nil {
			x.Old = r.Old.Name + " " + r.Old.Kind.Summary
		}
		got = append(got, x)
	}
	want := []route{
		{Pattern: "shop.example.com/api/", Host: "shop.example.com", Mount: "/api", App: "http://127.0.0.1:3000?name=api&cascade=true&pass_header=x-switchyard-pass&strip_prefix=true&timeout=5s",
			Name: "api", Options: "cascade=true&name=api&pass_header=x-switchyard-pass&strip_prefix=true&timeout=5s", Source: "gw.yaml:5: routes[0]",
			Strip: true, Cascade: true, Middleware: []middleware.Spec{{Name: "gzip"}}},
		{Pattern: "/new/", Host: "", Mount: "/new", App: "http://127.0.0.1:3001?canary=10&old=uwsgi%3A%2F%2F127.0.0.1%3A8002&stage=canary", Name: "127.0.0.1:3001",
			Options: "canary=10&old=uwsgi%3A%2F%2F127.0.0.1%3A8002&stage=canary", Old: "uwsgi://127.0.0.1:8002 " + p.Routes[1].Old.Kind.Summary, Source: "gw.yaml:9: routes[1]", Stage: migration.StageCanary},
		{Pattern: "*.example.com/", Host: "*.example.com", Mount: "", App: "status:403", Name: "status:403", Source: "gw.yaml:14: routes[2]"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
	if a := p.Routes[0].App; a.PassHeader != "X-Switchyard-Pass" || a.Target.Mount != "/api" || a.Where("strip_prefix") != "gw.yaml:7: routes[0]: route shop.example.com/api/" {
		t.Errorf("route app: pass header %q, mount %q, strip_prefix from %q", a.PassHeader, a.Target.Mount, a.Where("strip_prefix"))
	}
	if len(p.Chain) != 2 || !p.HasPrimary || p.Chain[1].Name != "legacy" || p.Chain[1].Source != "gw.yaml:2: delegates[0]" || p.Stage.Stage != migration.StageShadow || p.StageSource != "gw.yaml:3: stage" {
		t.Errorf("chain %+v, stage %v from %q", p.Chain, p.Stage.Stage, p.StageSource)
	}
	names, wildcards := p.CertificateNames()
	if d := cmp.Diff([]any{[]string{"shop.example.com"}, []string{"*.example.com"}}, []any{names, wildcards}); d != "" {
		t.Errorf("certificate names (-want +got):\n%s", d)
	}
}

// The table `gateway check` and /api/routes show is the plan's: routes as the router tries them, then the
// fall-through chain with the pair's stage.
func TestTableListsRoutesAsTriedThenTheChain(t *testing.T) {
	p, err := load(t, map[string]string{
		"GATEWAY_PRIMARY":   "http://127.0.0.1:8000",
		"GATEWAY_DELEGATES": "http://127.0.0.1:8001",
		"GATEWAY_STAGE":     "canary?canary=5",
		"GATEWAY_ROUTES":    "/a/=http://127.0.0.1:1,/a/b/=http://127.0.0.1:2?strip_prefix=true,x.example.com/=status:403",
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Table() {
		got = append(got, r.Pattern+" "+r.App+" strip="+map[bool]string{true: "y", false: "n"}[r.StripPrefix]+" "+r.Stage+" "+r.Old+" "+r.Source)
	}
	want := []string{
		"x.example.com/ status:403 strip=n   GATEWAY_ROUTES",
		"/a/b/ http://127.0.0.1:2?strip_prefix=true strip=y   GATEWAY_ROUTES",
		"/a/ http://127.0.0.1:1 strip=n   GATEWAY_ROUTES",
		"* http://127.0.0.1:8000 strip=n canary 5% http://127.0.0.1:8001 GATEWAY_PRIMARY",
		"* http://127.0.0.1:8001 strip=n   GATEWAY_DELEGATES[0]",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("table (-want +got):\n%s", d)
	}
}

func TestOptionKeyFindsTheKeyAMessageIsAbout(t *testing.T) {
	for _, tc := range []struct{ msg, key string }{
		{`option strip_prefix="maybe": expected true or false`, "strip_prefix"},
		{`app "http://x?a=\"b\"": option timeout="abc": expected a duration`, "timeout"},
		{`app "http://x": unknown option "colour" for http apps`, "colour"},
		{`option size: invalid size`, "size"},
		{`canary="150": expected a percentage`, "canary"},
		{`stage=canary needs canary, the new app's share`, "stage"},
		{`stage is not set: migration settings need a stage`, "stage"},
		{`app "ftp://x": unknown scheme "ftp"`, ""},
		{`strip_prefix does not apply to fastcgi apps`, ""},
	} {
		if got := optionKey(tc.msg); got != tc.key {
			t.Errorf("optionKey(%q) = %q, want %q", tc.msg, got, tc.key)
		}
	}
}

// A pattern without its leading '/' reads as a host name: "api/" routes requests with Host: api. That is
// kept (intranet hosts have one label) but said, with the path the user probably meant.
func TestAPatternThatReadsAsASingleLabelHostIsWarnedAbout(t *testing.T) {
	for _, tc := range []struct{ routes, want string }{
		{"api/=http://127.0.0.1:3000", `GATEWAY_ROUTES: route pattern "api/" is read as the host "api" (only requests with Host: api); for a path write "/api/"`},
		{"static=http://127.0.0.1:3000", `GATEWAY_ROUTES: route pattern "static" is read as the host "static" (only requests with Host: static); for a path write "/static"`},
		{"/api/=http://127.0.0.1:3000", ""},
		{"shop.example.com/=http://127.0.0.1:3000", ""},
		{"*.example.com/=http://127.0.0.1:3000", ""},
		{"localhost/=http://127.0.0.1:3000", ""},
		{"127.0.0.1/=http://127.0.0.1:3000", ""},
	} {
		p, err := load(t, map[string]string{"GATEWAY_ROUTES": tc.routes}, "")
		if err != nil {
			t.Fatalf("%s: %v", tc.routes, err)
		}
		var got string
		for _, w := range p.Warnings {
			if strings.Contains(w, "is read as the host") {
				got = w
			}
		}
		if got != tc.want {
			t.Errorf("GATEWAY_ROUTES=%s: warning %q, want %q", tc.routes, got, tc.want)
		}
	}
}

// The route table's app column leaves out what its stage column shows (stage, old, canary), keeping
// every other key as written: a YAML route's keys are folded into its app URL.
func TestTheTableShowsAMigratingAppWithoutItsStageKeys(t *testing.T) {
	file := `routes:
  - pattern: /api/
    app: http://127.0.0.1:3000?name=flask
    old: uwsgi://127.0.0.1:8002?name=django
    stage: canary
    canary_percent: 10
    shadow_ignore: [csrf]
  - pattern: /plain/
    app: http://127.0.0.1:3001?name=plain&timeout=5s
`
	p, err := load(t, map[string]string{"GATEWAY_CONFIG": "gw.yaml"}, file)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]string{}
	for _, r := range p.Table() {
		got[r.Pattern] = [2]string{r.App, r.Stage + " / " + r.Old}
	}
	want := map[string][2]string{
		"/api/":   {"http://127.0.0.1:3000?name=flask&shadow_ignore=csrf", "canary 10% / uwsgi://127.0.0.1:8002?name=django"},
		"/plain/": {"http://127.0.0.1:3001?name=plain&timeout=5s", " / "},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("route table (-want +got):\n%s", diff)
	}
}

// GATEWAY_FAST_LANE=true with HTTPS on GATEWAY_ADDR is said to do nothing, naming what turned HTTPS on.
func TestAFastLaneThatCannotServeIsWarnedAbout(t *testing.T) {
	const routes = "example.com/=http://127.0.0.1:3000"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"ACME", map[string]string{"GATEWAY_FAST_LANE": "true", "GATEWAY_ACME": "true", "GATEWAY_ACME_STORAGE": "/tmp/x"},
			"GATEWAY_FAST_LANE=true does nothing here: GATEWAY_ADDR serves HTTPS (GATEWAY_ACME) and the fast lane fronts only a plain-HTTP listener"},
		{"plain HTTP", map[string]string{"GATEWAY_FAST_LANE": "true"}, ""},
		{"HTTPS without the lane", map[string]string{"GATEWAY_ACME": "true", "GATEWAY_ACME_STORAGE": "/tmp/x"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.env["GATEWAY_ROUTES"] = routes
			p, err := load(t, tc.env, "")
			if err != nil {
				t.Fatal(err)
			}
			var got string
			for _, w := range p.Warnings {
				if strings.Contains(w, "GATEWAY_FAST_LANE") {
					got = w
				}
			}
			if !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("warning %q, want one starting %q", got, tc.want)
			}
		})
	}
}
