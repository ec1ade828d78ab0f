package migration

import (
	"testing"
	"time"

	"github.com/switchyard/switchyard/reqinfo"
)

// TestRecordAllocations checks that counting a request in the ledger allocates nothing once its path's
// template has a row, for a path that is templated (digits) and one that is not.
func TestRecordAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need the full runs")
	}
	r := NewRecorder(RecorderOptions{})
	r.AddRoute(RouteMeta{Pattern: "/api/", Key: "app a"})
	s := reqinfo.Snapshot{Route: "/api/", App: "a", Tried: []string{"a"}}
	for _, path := range []string{"/api/users/7", "/api/users/8f3a9c2e1b4d5a6f7e8d", "/api/about"} {
		r.Record("GET", path, s, 200, time.Millisecond, true) // the template's row
		if got := testing.AllocsPerRun(1000, func() { r.Record("GET", path, s, 200, time.Millisecond, true) }); got != 0 {
			t.Errorf("%s: %v allocations per request, want 0", path, got)
		}
	}
	// Each path was counted 1002 times (its row, AllocsPerRun's warm-up run and 1000 runs); both user
	// paths share one template.
	counted := map[string]uint64{}
	for _, row := range r.Report().Ledger {
		counted[row.Route+" "+row.Path] = row.Answers["a"]
	}
	want := map[string]uint64{"/api/ /api/users/{id}": 2004, "/api/ /api/about": 1002}
	if len(counted) != len(want) || counted["/api/ /api/users/{id}"] != 2004 || counted["/api/ /api/about"] != 1002 {
		t.Errorf("ledger %v, want %v", counted, want)
	}
}
