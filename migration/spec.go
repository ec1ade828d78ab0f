// Package migration owns the incremental-migration toolkit's bookkeeping: the per-route lifecycle stage
// and its settings (Spec), the comparison of a served answer with its shadow copy (Compare), the cascade
// ledger and per-route, per-app statistics (Recorder, fed by a middleware reading reqinfo), the negative
// cache that sends paths the new app is known to miss straight to the old one (NegativeCache), and the
// migration report served as JSON, as an HTML page and as Prometheus metrics.
//
// The request-path pieces (the canary Split and the Shadow copier) live in package delegate; the gateway
// package wires them from a Spec. A Recorder belongs to one built gateway; a reload builds a new one that
// continues the numbers (and the NegativeCache) of every route whose migration is unchanged
// (RecorderOptions.Previous), so a campaign's evidence outlives unrelated reloads.
package migration

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/delegate"
)

// Stage is where a route is in its migration from an old app to a new one.
type Stage string

// The lifecycle, in order. StageNone is a plain route with no migration.
const (
	StageNone    Stage = ""
	StageLegacy  Stage = "legacy"  // old serves everything; new gets nothing
	StageShadow  Stage = "shadow"  // old serves; new gets an asynchronous copy and answers are compared
	StageCanary  Stage = "canary"  // new serves CanaryPercent of clients (sticky), old the rest
	StagePrimary Stage = "primary" // new serves; what it passes on (404) falls through to old
	StageRetired Stage = "retired" // new serves alone; old gets nothing
)

// Stages lists the stages in lifecycle order.
var Stages = []Stage{StageLegacy, StageShadow, StageCanary, StagePrimary, StageRetired}

// Option keys a Spec is read from, in an APP URL's query (the environment form) or, in the YAML file, as
// route keys (canary_percent there is canary here; lists are YAML lists there, commas here).
const (
	KeyStage            = "stage"
	KeyOld              = "old"
	KeyCanary           = "canary"
	KeySticky           = "sticky"
	KeyShadowMethods    = "shadow_methods"
	KeyShadowIgnore     = "shadow_ignore"
	KeyShadowHeaders    = "shadow_headers"
	KeyShadowQueue      = "shadow_queue"
	KeyShadowWorkers    = "shadow_workers"
	KeyNegativeCache    = "negative_cache"
	KeyNegativeCacheTTL = "negative_cache_ttl"
)

// Keys lists every option key a Spec takes.
var Keys = []string{KeyStage, KeyOld, KeyCanary, KeySticky, KeyShadowMethods, KeyShadowIgnore, KeyShadowHeaders,
	KeyShadowQueue, KeyShadowWorkers, KeyNegativeCache, KeyNegativeCacheTTL}

// Spec is one route's migration settings.
type Spec struct {
	Stage Stage
	// Old is the old app's APP URL (for a route); for the primary/delegate pair it is empty and the first
	// delegate is the old app.
	Old string
	// CanaryPercent is the new app's share in the canary stage, 0 to 100.
	CanaryPercent float64
	// StickyCookie or StickyHeader names what a canary assignment is derived from.
	StickyCookie, StickyHeader string
	// ShadowMethods are the methods copied in the shadow stage (nil: GET, HEAD, OPTIONS).
	ShadowMethods []string
	// ShadowIgnore are JSON field paths left out of the comparison ("$.meta.generated_at", "$.items[*].id",
	// or a bare key such as "csrf_token" that matches at any depth).
	ShadowIgnore []string
	// ShadowHeaders are the response headers compared (nil, the key not given: Content-Type; empty, the
	// key given with no value: none).
	ShadowHeaders []string
	// ShadowQueue and ShadowWorkers size the copier (0: the delegate package's defaults).
	ShadowQueue, ShadowWorkers int
	// NegativeCache is the number of misses remembered in the primary stage (0: off); NegativeCacheTTL
	// how long each is trusted.
	NegativeCache    int
	NegativeCacheTTL time.Duration
	// Ignored lists the keys given for another stage than Stage (canary and sticky outside canary, the
	// shadow keys outside shadow, the negative cache outside primary): kept, so that moving between
	// stages is one edit of the stage, and ignored; the gateway warns about them.
	Ignored []string
}

// stageKeys are the keys that mean something in one stage only.
var stageKeys = map[Stage][]string{
	StageCanary:  {KeyCanary, KeySticky},
	StageShadow:  {KeyShadowMethods, KeyShadowIgnore, KeyShadowHeaders, KeyShadowQueue, KeyShadowWorkers},
	StagePrimary: {KeyNegativeCache, KeyNegativeCacheTTL},
}

// Key prints the settings that give a route's numbers their meaning: the stage, the canary share and what
// it sticks to, what a shadow copies and compares, the negative cache's size and TTL. It leaves out the
// old app (named apart, see Composition.Key) and the shadow queue and worker counts, which change the
// capacity but not what is counted.
func (s Spec) Key() string {
	headers := "(default)"
	if s.ShadowHeaders != nil {
		headers = strings.Join(s.ShadowHeaders, ",")
	}
	return fmt.Sprintf("stage=%s canary=%g sticky=%s/%s methods=%s ignore=%s headers=%s negative_cache=%d/%s",
		s.Stage, s.CanaryPercent, s.StickyCookie, s.StickyHeader, strings.Join(s.ShadowMethods, ","),
		strings.Join(s.ShadowIgnore, ","), headers, s.NegativeCache, s.NegativeCacheTTL)
}

// DefaultNegativeCacheTTL is how long a remembered miss is trusted when negative_cache_ttl is not set.
const DefaultNegativeCacheTTL = 5 * time.Minute

// ParseSpec reads a Spec from option values; get returns a key's value and whether it was given. pair
// says the spec is for the primary/delegate pair, where "old" is not accepted (the first delegate is the
// old app). Every problem is reported, each naming its key.
func ParseSpec(get func(key string) (string, bool), pair bool) (Spec, error) {
	var s Spec
	var errs []error
	bad := func(key, val, want string) { errs = append(errs, fmt.Errorf("%s=%q: expected %s", key, val, want)) }

	if v, ok := get(KeyStage); ok {
		st, err := ParseStage(v)
		if err != nil {
			errs = append(errs, err)
		}
		s.Stage = st
	}
	if v, ok := get(KeyOld); ok {
		if pair {
			errs = append(errs, fmt.Errorf("%s=%q: the primary/delegate pair takes its old app from the first delegate", KeyOld, v))
		} else if !validAppURL(v) {
			bad(KeyOld, v, "the old app's URL, query-escaped inside the new app's URL (old=http%3A%2F%2F127.0.0.1%3A8000)")
		} else {
			s.Old = v
		}
	}
	if v, ok := get(KeyCanary); ok {
		p, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), "%"), 64)
		if err != nil || p < 0 || p > 100 || p != p {
			bad(KeyCanary, v, "a percentage from 0 to 100 such as 10 or 2.5")
		}
		s.CanaryPercent = p
	}
	if v, ok := get(KeySticky); ok {
		c, h, good := delegate.ParseSticky(v)
		if !good {
			bad(KeySticky, v, "cookie:NAME or header:NAME")
		}
		s.StickyCookie, s.StickyHeader = c, h
	} else {
		s.StickyCookie = delegate.DefaultCanaryCookie
	}
	if v, ok := get(KeyShadowMethods); ok {
		for _, m := range splitList(v) {
			m = strings.ToUpper(m)
			if !validMethod(m) {
				bad(KeyShadowMethods, v, "HTTP methods separated by commas such as GET,HEAD,POST")
				break
			}
			s.ShadowMethods = append(s.ShadowMethods, m)
		}
	}
	if v, ok := get(KeyShadowIgnore); ok {
		for _, p := range splitList(v) {
			if _, err := parseFieldPath(p); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", KeyShadowIgnore, v, err))
				break
			}
			s.ShadowIgnore = append(s.ShadowIgnore, p)
		}
	}
	if v, ok := get(KeyShadowHeaders); ok {
		s.ShadowHeaders = []string{} // given but empty (shadow_headers= or []): compare no header
		for _, h := range splitList(v) {
			if !validMethod(h) { // header names are tokens too
				bad(KeyShadowHeaders, v, "header names separated by commas such as Content-Type,Location")
				break
			}
			s.ShadowHeaders = append(s.ShadowHeaders, http.CanonicalHeaderKey(h))
		}
	}
	intKey := func(key string, dst *int, max int) {
		if v, ok := get(key); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 || n > max {
				bad(key, v, fmt.Sprintf("an integer from 0 to %d", max))
			}
			*dst = n
		}
	}
	intKey(KeyShadowQueue, &s.ShadowQueue, 1<<20)
	intKey(KeyShadowWorkers, &s.ShadowWorkers, 1024)
	intKey(KeyNegativeCache, &s.NegativeCache, 1<<24)
	s.NegativeCacheTTL = DefaultNegativeCacheTTL
	if v, ok := get(KeyNegativeCacheTTL); ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d <= 0 {
			bad(KeyNegativeCacheTTL, v, "a positive duration such as 5m")
		}
		s.NegativeCacheTTL = d
	}

	// Consistency between the keys.
	if len(errs) == 0 {
		switch {
		case s.Stage == StageNone && (s.Old != "" || anyGiven(get, KeyCanary, KeySticky, KeyShadowMethods, KeyShadowIgnore, KeyShadowHeaders, KeyShadowQueue, KeyShadowWorkers, KeyNegativeCache, KeyNegativeCacheTTL)):
			errs = append(errs, fmt.Errorf("%s is not set: migration settings need a stage (one of %s)", KeyStage, stageNames()))
		case !pair && s.Stage != StageNone && s.Stage != StageRetired && s.Old == "":
			errs = append(errs, fmt.Errorf("%s=%s needs %s, the old app's URL", KeyStage, s.Stage, KeyOld))
		case s.Stage == StageCanary && !given(get, KeyCanary):
			errs = append(errs, fmt.Errorf("%s=canary needs %s, the new app's share in percent", KeyStage, KeyCanary))
		}
	}
	if s.Stage != StageNone {
		for st, keys := range stageKeys {
			if st == s.Stage {
				continue
			}
			for _, k := range keys {
				if given(get, k) {
					s.Ignored = append(s.Ignored, k)
				}
			}
		}
		sort.Strings(s.Ignored)
		// What the stage ignores takes no part in what it does or in its numbers' key.
		if s.Stage != StageCanary {
			s.CanaryPercent, s.StickyCookie, s.StickyHeader = 0, "", ""
		}
		if s.Stage != StageShadow {
			s.ShadowMethods, s.ShadowIgnore, s.ShadowHeaders, s.ShadowQueue, s.ShadowWorkers = nil, nil, nil, 0, 0
		}
		if s.Stage != StagePrimary {
			s.NegativeCache, s.NegativeCacheTTL = 0, DefaultNegativeCacheTTL
		}
	}
	return s, errors.Join(errs...)
}

// validAppURL reports whether v looks like an APP URL: one or several instances ("http://a|http://b"),
// each with a scheme. The registry checks the rest when the app is built.
func validAppURL(v string) bool {
	insts, err := adapters.SplitInstances(v)
	if err != nil {
		return false
	}
	for _, in := range insts {
		if u, err := url.Parse(in); err != nil || u.Scheme == "" {
			return false
		}
	}
	return true
}

func given(get func(string) (string, bool), key string) bool { _, ok := get(key); return ok }

func anyGiven(get func(string) (string, bool), keys ...string) bool {
	for _, k := range keys {
		if given(get, k) {
			return true
		}
	}
	return false
}

// ParseStage reads a stage name.
func ParseStage(v string) (Stage, error) {
	st := Stage(strings.ToLower(strings.TrimSpace(v)))
	for _, s := range Stages {
		if st == s {
			return st, nil
		}
	}
	return StageNone, fmt.Errorf("%s=%q: expected one of %s", KeyStage, v, stageNames())
}

func stageNames() string {
	names := make([]string, len(Stages))
	for i, s := range Stages {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// ParsePairStage reads GATEWAY_STAGE: a stage name, optionally followed by "?" and the other migration
// keys ("canary?canary=10&sticky=header:X-User-Id"). "" means no migration (StageNone).
func ParsePairStage(v string) (Spec, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return Spec{}, nil
	}
	name, query, _ := strings.Cut(v, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return Spec{}, fmt.Errorf("options %q: %v", query, err)
	}
	if q.Has(KeyStage) {
		return Spec{}, fmt.Errorf("give the stage once, before the '?': %q", v)
	}
	for k := range q {
		if !isKey(k) {
			return Spec{}, fmt.Errorf("unknown option %q: expected %s", k, strings.Join(Keys[2:], ", "))
		}
	}
	return ParseSpec(func(k string) (string, bool) {
		if k == KeyStage {
			return name, true
		}
		vs, ok := q[k]
		if !ok || len(vs) == 0 {
			return "", false
		}
		return vs[0], true
	}, true)
}

func isKey(k string) bool {
	for _, key := range Keys {
		if k == key {
			return true
		}
	}
	return false
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
