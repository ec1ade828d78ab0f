package migration

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/reqinfo"
)

func TestARecorderCarriesOverWhatItsPredecessorRecorded(t *testing.T) {
	prev := NewRecorder(RecorderOptions{})
	prev.AddRoute(RouteMeta{Pattern: "/api/", Stage: StageShadow, Key: "k1"})
	prev.AddRoute(RouteMeta{Pattern: "/shop/", Stage: StageCanary, Key: "canary 10"})
	prev.AddRoute(RouteMeta{Pattern: "/gone/", Key: "k3"})
	prev.AttachShadow("/api/", func() delegate.ShadowStats { return delegate.ShadowStats{Queued: 5, Dropped: 1} })
	for _, route := range []string{"/api/", "/shop/", "/gone/", ""} { // "": a request no route claimed
		prev.Record("GET", "/x/1", reqinfo.Snapshot{Route: route, App: "a"}, 200, time.Millisecond, true)
	}

	r := NewRecorder(RecorderOptions{Previous: prev})
	r.AddRoute(RouteMeta{Pattern: "/api/", Stage: StageShadow, Key: "k1"})
	r.AddRoute(RouteMeta{Pattern: "/shop/", Stage: StageCanary, Key: "canary 25"})
	r.AttachShadow("/api/", func() delegate.ShadowStats { return delegate.ShadowStats{Queued: 2} })
	reset, removed := r.Carried()
	if len(reset) != 1 || reset[0] != "/shop/" || len(removed) != 1 || removed[0] != "/gone/" {
		t.Fatalf("reset %v removed %v; want /shop/ and /gone/", reset, removed)
	}
	requests := map[string]uint64{}
	var shadow *ShadowReport
	for _, rt := range r.Report().Routes {
		requests[rt.Pattern] = rt.Requests
		if rt.Pattern == "/api/" {
			shadow = rt.Shadow
		}
	}
	if requests["/api/"] != 1 || requests["/shop/"] != 0 || requests[""] != 1 {
		t.Fatalf("requests = %v; want /api/ and the unclaimed request carried, /shop/ afresh", requests)
	}
	if _, ok := requests["/gone/"]; ok {
		t.Fatal("a removed route is still reported")
	}
	if shadow == nil || shadow.Queued != 7 || shadow.Dropped != 1 {
		t.Fatalf("shadow = %+v; want the old copier's counters added to the new one's", shadow)
	}
	ledger := map[string]uint64{}
	for _, row := range r.Report().Ledger {
		ledger[row.Route] += row.Total
	}
	if ledger["/api/"] != 1 || ledger[""] != 1 || ledger["/shop/"] != 0 || ledger["/gone/"] != 0 {
		t.Fatalf("ledger per route = %v", ledger)
	}
	// Without a predecessor nothing is carried or reported.
	if reset, removed := NewRecorder(RecorderOptions{}).Carried(); reset != nil || removed != nil {
		t.Fatalf("a first recorder reports %v %v", reset, removed)
	}
}

func TestTheLedgerKeyLimitCountsCarriedKeys(t *testing.T) {
	prev := NewRecorder(RecorderOptions{LedgerKeys: 2})
	prev.AddRoute(RouteMeta{Pattern: "/a/", Key: "a"})
	prev.Record("GET", "/a/x", reqinfo.Snapshot{Route: "/a/", App: "a"}, 200, 0, false)
	prev.Record("GET", "/a/y", reqinfo.Snapshot{Route: "/a/", App: "a"}, 200, 0, false)
	r := NewRecorder(RecorderOptions{LedgerKeys: 2, Previous: prev})
	r.AddRoute(RouteMeta{Pattern: "/a/", Key: "a"})
	r.Carried()
	r.Record("GET", "/a/z", reqinfo.Snapshot{Route: "/a/", App: "a"}, 200, 0, false)
	if rep := r.Report(); rep.LedgerOverflow != 1 || len(rep.Ledger) != 3 {
		t.Fatalf("overflow %d, %d rows; want the third key counted under %q", rep.LedgerOverflow, len(rep.Ledger), OverflowPath)
	}
}
