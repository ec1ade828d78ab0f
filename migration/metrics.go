package migration

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector returns a prometheus.Collector exposing the report's numbers, for a registry the caller owns
// (never the global one). Metric names start with switchyard_migration_; labels are the route pattern and
// the app's label (adapters.Target.Name), both bounded by the configuration (requests no route claimed are
// labelled route=""). No label holds a stage or an option, and every route with a stage exports the same
// series whatever its stage, so moving a route from stage to stage creates no series: the stage is a
// state set (one series per stage, 1 for the current one), the shadow and negative-cache counters are 0
// where they do not apply.
func (r *Recorder) Collector() prometheus.Collector { return collector{r} }

type collector struct{ r *Recorder }

var (
	descStage = prometheus.NewDesc("switchyard_migration_stage",
		"Migration stage of a route: one series per stage, 1 for the current one, 0 for the others.", []string{"route", "stage"}, nil)
	descCanary = prometheus.NewDesc("switchyard_migration_canary_percent",
		"Configured share of the new app, in percent: the canary share in the canary stage, 0 before it (legacy, shadow), 100 after it (primary, retired).", []string{"route"}, nil)
	descRequests = prometheus.NewDesc("switchyard_migration_requests_total",
		"Requests answered, per route and app.", []string{"route", "app", "role"}, nil)
	descErrors = prometheus.NewDesc("switchyard_migration_errors_total",
		"Answers that were 5xx or aborted, per route and app.", []string{"route", "app", "role"}, nil)
	descLatency = prometheus.NewDesc("switchyard_migration_request_duration_seconds",
		"Time to answer, per route and app.", []string{"route", "app", "role"}, nil)
	descNewShare = prometheus.NewDesc("switchyard_migration_new_share",
		"Share of the route's requests answered by the new app (0 to 1).", []string{"route"}, nil)
	descShadow = prometheus.NewDesc("switchyard_migration_shadow_comparisons_total",
		"Shadow copies compared, by result (match, mismatch, error).", []string{"route", "result"}, nil)
	descShadowDropped = prometheus.NewDesc("switchyard_migration_shadow_dropped_total",
		"Shadow copies dropped because the queue was full.", []string{"route"}, nil)
	descShadowSkipped = prometheus.NewDesc("switchyard_migration_shadow_skipped_total",
		"Shadowable requests not copied (body over the limit or unread, protocol switch).", []string{"route"}, nil)
	descFellBack = prometheus.NewDesc("switchyard_migration_fell_back_total",
		"Requests the new app never received (connection not opened, no instance) that the old app served instead.", []string{"route"}, nil)
	descNegSaved = prometheus.NewDesc("switchyard_migration_negative_cache_saved_total",
		"Requests sent straight to the old app because the new one is known to miss them: round trips saved.", []string{"route"}, nil)
	descNegEntries = prometheus.NewDesc("switchyard_migration_negative_cache_entries",
		"Misses held in the negative cache.", []string{"route"}, nil)
	descLedgerOverflow = prometheus.NewDesc("switchyard_migration_ledger_overflow_total",
		"Requests counted under the ledger's overflow key because it held its maximum of distinct keys.", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStage, descCanary, descRequests, descErrors, descLatency, descNewShare,
		descShadow, descShadowDropped, descShadowSkipped, descFellBack, descNegSaved, descNegEntries, descLedgerOverflow} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	rep := c.r.Report()
	for _, rt := range rep.Routes {
		staged := rt.Stage != "-"
		if staged {
			for _, st := range Stages {
				v := 0.0
				if string(st) == rt.Stage {
					v = 1
				}
				ch <- prometheus.MustNewConstMetric(descStage, prometheus.GaugeValue, v, rt.Pattern, string(st))
			}
			ch <- prometheus.MustNewConstMetric(descNewShare, prometheus.GaugeValue, rt.NewShare, rt.Pattern)
			ch <- prometheus.MustNewConstMetric(descCanary, prometheus.GaugeValue, configuredShare(rt), rt.Pattern)
			ch <- prometheus.MustNewConstMetric(descFellBack, prometheus.CounterValue, float64(rt.FellBack), rt.Pattern)
		}
		for _, a := range rt.Apps {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(a.Requests), rt.Pattern, a.App, a.Role)
			ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(a.Errors), rt.Pattern, a.App, a.Role)
			buckets := make(map[float64]uint64, len(latencyBuckets))
			var cum uint64
			for i, ub := range latencyBuckets {
				cum += a.buckets[i]
				buckets[ub] = cum
			}
			ch <- prometheus.MustNewConstHistogram(descLatency, a.timed, a.sum, buckets, rt.Pattern, a.App, a.Role)
		}
		if s := rt.Shadow; s != nil || staged {
			if s == nil {
				s = &ShadowReport{}
			}
			ch <- prometheus.MustNewConstMetric(descShadow, prometheus.CounterValue, float64(s.Matched), rt.Pattern, "match")
			ch <- prometheus.MustNewConstMetric(descShadow, prometheus.CounterValue, float64(s.Mismatched), rt.Pattern, "mismatch")
			ch <- prometheus.MustNewConstMetric(descShadow, prometheus.CounterValue, float64(s.Errors), rt.Pattern, "error")
			ch <- prometheus.MustNewConstMetric(descShadowDropped, prometheus.CounterValue, float64(s.Dropped), rt.Pattern)
			ch <- prometheus.MustNewConstMetric(descShadowSkipped, prometheus.CounterValue, float64(s.Skipped), rt.Pattern)
		}
		if n := rt.NegativeCache; n != nil || staged {
			if n == nil {
				n = &NegativeCacheReport{}
			}
			ch <- prometheus.MustNewConstMetric(descNegSaved, prometheus.CounterValue, float64(n.Saved), rt.Pattern)
			ch <- prometheus.MustNewConstMetric(descNegEntries, prometheus.GaugeValue, float64(n.Entries), rt.Pattern)
		}
	}
	ch <- prometheus.MustNewConstMetric(descLedgerOverflow, prometheus.CounterValue, float64(rep.LedgerOverflow))
}

// configuredShare is the new app's configured share of a route in percent (see descCanary).
func configuredShare(rt RouteReport) float64 {
	switch Stage(rt.Stage) {
	case StageCanary:
		return rt.CanaryPercent
	case StagePrimary, StageRetired:
		return 100
	}
	return 0
}
