package migration

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// parseSpecQuery reads a Spec from the migration keys of a query string (an APP URL's options),
// ignoring other keys, as plan.Parse reads a route's app options.
func parseSpecQuery(rawQuery string, pair bool) (Spec, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Spec{}, fmt.Errorf("options %q: %v", rawQuery, err)
	}
	return ParseSpec(func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) == 0 {
			return "", false
		}
		return v[0], true
	}, pair)
}

func TestParseSpecQuery(t *testing.T) {
	for _, tc := range []struct {
		name    string
		query   string
		pair    bool
		wantErr string
		check   func(Spec) bool
	}{
		{"no migration keys is a plain route", "timeout=5s", false, "", func(s Spec) bool { return s.Stage == StageNone }},
		{"a canary reads its share and sticky header", "stage=canary&canary=12.5&old=http%3A%2F%2Fold%3A8000&sticky=header:X-User", false, "",
			func(s Spec) bool {
				return s.CanaryPercent == 12.5 && s.StickyHeader == "X-User" && s.Old == "http://old:8000"
			}},
		{"a shadow reads its lists", "stage=shadow&old=http://o&shadow_methods=get,post&shadow_ignore=$.ts,csrf&shadow_headers=content-type,location", false, "",
			func(s Spec) bool {
				return strings.Join(s.ShadowMethods, ",") == "GET,POST" && len(s.ShadowIgnore) == 2 && s.ShadowHeaders[1] == "Location"
			}},
		{"an empty shadow_headers compares no header", "stage=shadow&old=http://o&shadow_headers=", false, "",
			func(s Spec) bool { return s.ShadowHeaders != nil && len(s.ShadowHeaders) == 0 }},
		{"no shadow_headers leaves the default (nil: Content-Type)", "stage=shadow&old=http://o", false, "",
			func(s Spec) bool { return s.ShadowHeaders == nil }},
		{"a primary with a negative cache", "stage=primary&old=http://o&negative_cache=100&negative_cache_ttl=1m", false, "",
			func(s Spec) bool { return s.NegativeCache == 100 && s.NegativeCacheTTL == time.Minute }},
		{"an old app of several instances is accepted", "stage=legacy&old=" + url.QueryEscape("http://a:1|http://b:2?lb=round_robin"), false, "",
			func(s Spec) bool { return s.Old == "http://a:1|http://b:2?lb=round_robin" }},
		{"retired needs no old app", "stage=retired", false, "", func(s Spec) bool { return s.Stage == StageRetired }},
		{"an unknown stage names the key and the choices", "stage=beta", false, `stage="beta": expected one of legacy, shadow, canary, primary, retired`, nil},
		{"a stage without the old app is refused", "stage=shadow", false, "stage=shadow needs old", nil},
		{"a canary without a share is refused", "stage=canary&old=http://o", false, "stage=canary needs canary", nil},
		{"a share over 100 is refused", "stage=canary&old=http://o&canary=120", false, `canary="120": expected a percentage`, nil},
		{"a share outside the canary stage is kept, ignored and listed", "stage=primary&old=http://o&canary=5&sticky=header:X-U", false, "",
			func(s Spec) bool {
				return s.CanaryPercent == 0 && s.StickyHeader == "" && strings.Join(s.Ignored, ",") == "canary,sticky"
			}},
		{"migration keys without a stage are refused", "old=http://o", false, "stage is not set", nil},
		{"a bad sticky setting is refused", "stage=canary&old=http://o&canary=5&sticky=ip", false, `sticky="ip": expected cookie:NAME or header:NAME`, nil},
		{"a bad ignore path is refused", "stage=shadow&old=http://o&shadow_ignore=$.a[", false, "shadow_ignore", nil},
		{"the pair takes no old key", "stage=legacy&old=http://o", true, "first delegate", nil},
		{"a negative cache outside the primary stage is kept, ignored and listed", "stage=shadow&old=http://o&negative_cache=10&negative_cache_ttl=1m", false, "",
			func(s Spec) bool {
				return s.NegativeCache == 0 && s.NegativeCacheTTL == DefaultNegativeCacheTTL && strings.Join(s.Ignored, ",") == "negative_cache,negative_cache_ttl"
			}},
		{"shadow keys outside the shadow stage take no part in the numbers' key", "stage=legacy&old=http://o&shadow_ignore=$.ts", false, "",
			func(s Spec) bool {
				plain, _ := parseSpecQuery("stage=legacy&old=http://o", false)
				return s.Key() == plain.Key() && strings.Join(s.Ignored, ",") == "shadow_ignore"
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSpecQuery(tc.query, tc.pair)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(s) {
				t.Fatalf("spec = %+v, err = %v", s, err)
			}
		})
	}
}

func TestParsePairStage(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Stage
		wantErr string
	}{
		{"", StageNone, ""},
		{"legacy", StageLegacy, ""},
		{"canary?canary=10&sticky=cookie:cohort", StageCanary, ""},
		{"primary?negative_cache=1000&negative_cache_ttl=10m", StagePrimary, ""},
		{"canary", StageNone, "needs canary"},
		{"shadow?stage=legacy", StageNone, "give the stage once"},
		{"shadow?colour=red", StageNone, `unknown option "colour"`},
	} {
		s, err := ParsePairStage(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePairStage(%q) err = %v; want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || s.Stage != tc.want {
			t.Errorf("ParsePairStage(%q) = %v, %v; want %v", tc.in, s.Stage, err, tc.want)
		}
	}
}

func FuzzParsePairStage(f *testing.F) {
	for _, s := range []string{"canary?canary=10", "shadow?shadow_ignore=$.a", "primary?negative_cache=5", "x?%zz", "retired?"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParsePairStage(s)
		if err == nil && spec.Stage == StageCanary && (spec.CanaryPercent < 0 || spec.CanaryPercent > 100) {
			t.Fatalf("%q accepted share %v", s, spec.CanaryPercent)
		}
	})
}

func TestTemplate(t *testing.T) {
	for in, want := range map[string]string{
		"/orders/42":                                "/orders/{id}",
		"/orders/42/items/9f8e7d6c5b4a3928":         "/orders/{id}/items/{id}",
		"/u/123e4567-e89b-12d3-a456-426614174000/x": "/u/{id}/x",
		"/static/app.v2.css":                        "/static/app.v2.css",
		"/about":                                    "/about",
		"/api/v1/users":                             "/api/v1/users",
	} {
		if got := Template(in); got != want {
			t.Errorf("Template(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestTemplateAsSegments checks Template against its definition, segment by segment, on paths of every
// shape, long ones included (a segment over 40 bytes is an id in a path that is templated; a template
// over 256 bytes is cut).
func TestTemplateAsSegments(t *testing.T) {
	long := strings.Repeat("x", 41)
	for _, in := range []string{"", "/", "//", "/a//b/", "/7", "/orders/42/", "/" + long, "/" + long + "/x",
		strings.Repeat("/abc", 80), strings.Repeat("/12", 100), strings.Repeat("/"+long, 10), "/é/12/%41"} {
		segs := strings.Split(in, "/")
		for i, s := range segs {
			if looksLikeID(s) {
				segs[i] = "{id}"
			}
		}
		want := strings.Join(segs, "/")
		if !strings.ContainsAny(in, "0123456789") && len(in) < 256 {
			want = in // a short path without digits is taken as it is (the long segment too)
		}
		if len(want) > 256 {
			want = want[:256] + "..."
		}
		if got := Template(in); got != want {
			t.Errorf("Template(%q) = %q; want %q", in, got, want)
		}
	}
}
