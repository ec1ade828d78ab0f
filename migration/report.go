package migration

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"github.com/switchyard/switchyard/delegate"
)

// Report is the migration report: per route, per app, what the gateway saw since it was built.
type Report struct {
	Generated time.Time `json:"generated"`
	// Since is when the running configuration was built. A route's numbers count from its own Since,
	// earlier when a reload carried them over.
	Since  time.Time     `json:"since"`
	Routes []RouteReport `json:"routes"`
	// Ledger lists, per (method, route, path template), which apps answered, busiest first.
	Ledger []LedgerRow `json:"ledger"`
	// LedgerOverflow counts requests recorded under OverflowPath because the ledger was full.
	LedgerOverflow uint64 `json:"ledger_overflow"`
}

// RouteReport is one route's part of the report.
type RouteReport struct {
	Pattern string `json:"pattern"`
	// Since is when the route's numbers started: when it was configured as it is now (a reload that
	// changes the route's migration starts them afresh; other reloads keep them).
	Since         time.Time `json:"since"`
	Stage         string    `json:"stage"`
	New           string    `json:"new,omitempty"`
	Old           string    `json:"old,omitempty"`
	CanaryPercent float64   `json:"canary_percent,omitempty"`
	Requests      uint64    `json:"requests"`
	Errors        uint64    `json:"errors"`
	ErrorRate     float64   `json:"error_rate"`
	// NewShare is the share of the route's requests answered by the new app (0 when the route has none).
	NewShare float64 `json:"new_share"`
	// FellBack counts the requests the new app never received (its connection could not be opened, no
	// instance was available) that the old app served instead, in the canary and primary stages.
	FellBack      uint64               `json:"fell_back"`
	Apps          []AppReport          `json:"apps"`
	Shadow        *ShadowReport        `json:"shadow,omitempty"`
	NegativeCache *NegativeCacheReport `json:"negative_cache,omitempty"`
}

// AppReport is one app's numbers within a route.
type AppReport struct {
	App       string  `json:"app"`
	Role      string  `json:"role"` // "new", "old" or "other"
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P50ms     float64 `json:"p50_ms"`
	P99ms     float64 `json:"p99_ms"`

	buckets []uint64
	sum     float64
	timed   uint64
}

// ShadowReport is a shadow route's comparison counters and latest mismatches (newest first).
type ShadowReport struct {
	Compared   uint64 `json:"compared"`
	Matched    uint64 `json:"matched"`
	Mismatched uint64 `json:"mismatched"`
	// Errors are copies the new app did not answer (refused, timed out, cut): they count against the match
	// rate.
	Errors uint64 `json:"errors"`
	// MatchRate is Matched / Compared: the share of copies whose every compared part (Parts) was equal.
	MatchRate float64 `json:"match_rate"`
	// Parts says what was compared, in words (status, which headers and how, the body and what it ignores).
	Parts   []string `json:"parts"`
	Queued  uint64   `json:"queued"`
	Dropped uint64   `json:"dropped"`
	Skipped uint64   `json:"skipped"`
	Ignore  []string `json:"ignore,omitempty"`
	// Headers are the response headers compared (empty: none).
	Headers []string `json:"headers"`
	// Causes counts mismatched copies by what differed, most frequent first; one copy may have several
	// causes (status and a body field), so the counts may add up to more than Mismatched.
	Causes     []CauseCount `json:"causes"`
	Mismatches []Mismatch   `json:"mismatches"`
}

// CauseCount is how many mismatched copies differed in one part: "status", "header Content-Type",
// "body $.price" (array indexes folded to [*]), "body" (a non-JSON body), "no answer".
type CauseCount struct {
	Cause string `json:"cause"`
	Count uint64 `json:"count"`
}

// NegativeCacheReport is a primary route's negative cache counters.
type NegativeCacheReport struct {
	Entries    int    `json:"entries"`
	Remembered uint64 `json:"remembered"`
	Saved      uint64 `json:"saved_round_trips"`
}

// LedgerRow is one ledger key with the apps that answered it.
type LedgerRow struct {
	Method  string            `json:"method"`
	Route   string            `json:"route"`
	Path    string            `json:"path"`
	Total   uint64            `json:"total"`
	Answers map[string]uint64 `json:"answers"`
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// Report returns a consistent-per-route snapshot of everything recorded.
func (r *Recorder) Report() Report {
	rep := Report{Generated: r.opts.Now(), Since: r.started, Routes: []RouteReport{}, Ledger: []LedgerRow{}}
	r.mu.RLock()
	order := append([]string(nil), r.order...)
	routes := make([]*routeStats, len(order))
	for i, p := range order {
		routes[i] = r.routes[p]
	}
	r.mu.RUnlock()

	for _, rs := range routes {
		rs.mu.Lock()
		rr := RouteReport{Pattern: rs.meta.Pattern, Since: rs.since, Stage: string(rs.meta.Stage), New: rs.meta.New, Old: rs.meta.Old,
			CanaryPercent: rs.meta.CanaryPercent, FellBack: rs.fellBack, Apps: []AppReport{}}
		if rr.Stage == "" {
			rr.Stage = "-"
		}
		var newCount uint64
		for _, name := range rs.appOrder {
			as := rs.apps[name]
			role := "other"
			switch name {
			case rs.meta.New:
				role = "new"
				newCount += as.requests
			case rs.meta.Old:
				role = "old"
			}
			rr.Requests += as.requests
			rr.Errors += as.errors
			rr.Apps = append(rr.Apps, AppReport{App: name, Role: role, Requests: as.requests, Errors: as.errors,
				ErrorRate: ratio(as.errors, as.requests), P50ms: as.quantile(0.5) * 1000, P99ms: as.quantile(0.99) * 1000,
				buckets: append([]uint64(nil), as.buckets[:]...), sum: as.sum, timed: as.timed})
		}
		rr.ErrorRate = ratio(rr.Errors, rr.Requests)
		rr.NewShare = ratio(newCount, rr.Requests)
		if rs.shadowStats != nil || rs.compared > 0 {
			sr := &ShadowReport{Compared: rs.compared, Matched: rs.matched, Errors: rs.shadowErrs,
				Mismatched: rs.compared - rs.matched - rs.shadowErrs, Ignore: rs.compare.Ignore, Headers: rs.compare.headers(),
				Parts: rs.compare.Parts(), Causes: []CauseCount{}, Mismatches: []Mismatch{}}
			for c, n := range rs.causes {
				sr.Causes = append(sr.Causes, CauseCount{Cause: c, Count: n})
			}
			sort.Slice(sr.Causes, func(i, j int) bool {
				a, b := sr.Causes[i], sr.Causes[j]
				return a.Count > b.Count || a.Count == b.Count && a.Cause < b.Cause
			})
			sr.MatchRate = ratio(sr.Matched, sr.Compared)
			st := rs.shadowBase
			for _, f := range []func() delegate.ShadowStats{rs.shadowPrev, rs.shadowStats} {
				if f != nil {
					st = addShadowStats(st, f())
				}
			}
			sr.Queued, sr.Dropped, sr.Skipped = st.Queued, st.Dropped, st.Skipped
			n := len(rs.samples)
			for i := 1; i <= n; i++ { // newest first
				sr.Mismatches = append(sr.Mismatches, rs.samples[((rs.next-i)%n+n)%n])
			}
			rr.Shadow = sr
		}
		if rs.negCache != nil {
			rr.NegativeCache = &NegativeCacheReport{Entries: rs.negCache.Len(), Remembered: rs.negCache.Remembered(), Saved: rs.negCache.Saved()}
		}
		for k, counts := range rs.ledger {
			row := LedgerRow{Method: k.method, Route: rs.meta.Pattern, Path: k.path, Answers: make(map[string]uint64, len(counts))}
			for app, n := range counts {
				row.Answers[app] = n
				row.Total += n
			}
			rep.Ledger = append(rep.Ledger, row)
		}
		rep.LedgerOverflow += rs.overflow
		rs.mu.Unlock()
		rep.Routes = append(rep.Routes, rr)
	}
	sort.Slice(rep.Ledger, func(i, j int) bool {
		a, b := rep.Ledger[i], rep.Ledger[j]
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		if a.Route != b.Route {
			return a.Route < b.Route
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Method < b.Method
	})
	return rep
}

// JSONHandler serves the report as JSON (GET /api/migration).
func (r *Recorder) JSONHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r.Report())
	})
}
