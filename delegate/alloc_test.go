package delegate

import (
	"net/http"
	"testing"
)

// TestCascadeAllocationsDoNotGrow checks the steady state of a cascade: the allocations per request are
// the same over 100 and over 10000 requests (nothing is kept per request), and no more than the request
// copy and header clone the app that may pass gets (Body contract: its headers are its own).
func TestCascadeAllocationsDoNotGrow(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("allocation counts need the full runs, without the race detector (it empties sync.Pools at random)")
	}
	body := []byte("hello")
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write(body)
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) })
	tests := []struct {
		name string
		apps []App
		max  float64
	}{
		{"a 404 from the primary and the delegate's answer", []App{{Name: "new", Handler: notFound}, {Name: "old", Handler: ok}}, 4},
		{"the primary's answer", []App{{Name: "new", Handler: ok}, {Name: "old", Handler: notFound}}, 4},
		{"three apps, the last one answering", []App{{Name: "a", Handler: notFound}, {Name: "b", Handler: notFound}, {Name: "c", Handler: ok}}, 8},
		{"a single app", []App{{Name: "only", Handler: ok}}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cascade{Apps: tt.apps}
			r, w := cascadeRequest(), newNopWriter()
			f := func() { w.reset(); c.ServeHTTP(w, r) }
			short, long := testing.AllocsPerRun(100, f), testing.AllocsPerRun(10000, f)
			if short != long || long > tt.max {
				t.Fatalf("allocations per request = %v (100 runs), %v (10000 runs), want the same, at most %v", short, long, tt.max)
			}
			if w.code != 0 && w.code != http.StatusOK {
				t.Fatalf("status %d", w.code)
			}
		})
	}
}
