package reqinfo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// sink keeps results escaping, as they do in a server, so the counts are a server's.
var sink any

func TestRecordAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need the full runs")
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	in := &Info{}
	tests := []struct {
		name string
		want float64
		f    func()
	}{
		{"attaching a record costs the record and the request copy", 2, func() { sink, _ = Attach(r) }},
		{"a request's life (attach, route, two apps tried, snapshots) costs only attaching", 2, func() {
			r2, in := Attach(r)
			sink = r2
			in.SetRoute("/api/")
			in.Tried("new")
			in.Tried("old")
			_ = in.Snapshot()
			_ = in.Snapshot()
		}},
		{"a snapshot allocates nothing", 0, func() { _ = in.Snapshot() }},
		{"finding the record allocates nothing", 0, func() { _ = From(r.Context()) }},
	}
	in.Tried("a")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			short, long := testing.AllocsPerRun(100, tt.f), testing.AllocsPerRun(10000, tt.f)
			if short != tt.want || long != tt.want {
				t.Fatalf("allocations per run = %v (100 runs), %v (10000 runs), want %v", short, long, tt.want)
			}
		})
	}
}

func TestAttachedContextBehavesAsTheRequestContext(t *testing.T) {
	type key struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	r, in := Attach(httptest.NewRequest(http.MethodGet, "/", nil).WithContext(parent))
	ctx := r.Context()
	if From(ctx) != in || ctx.Value(key{}) != "v" {
		t.Fatalf("From = %p (want %p), parent value = %v", From(ctx), in, ctx.Value(key{}))
	}
	child, stop := context.WithCancel(ctx)
	defer stop()
	cancel()
	<-child.Done() // a child of the attached context sees the parent's cancellation
	if ctx.Err() != context.Canceled || From(child) != in {
		t.Fatalf("Err = %v, From(child) = %p", ctx.Err(), From(child))
	}
}

func TestSnapshotIsNotChangedByLaterRecordsOrByAppendingToIt(t *testing.T) {
	in := &Info{}
	in.Tried("a")
	s := in.Snapshot()
	grown := append(s.Tried, "x")
	in.Tried("b")
	in.Tried("c")
	if len(s.Tried) != 1 || s.Tried[0] != "a" || grown[1] != "x" {
		t.Fatalf("snapshot %q, appended copy %q", s.Tried, grown)
	}
	if got := in.Snapshot().Tried; len(got) != 3 || got[1] != "b" {
		t.Fatalf("record %q, want [a b c]", got)
	}
}

func TestTheUpstreamIsTheAnsweringApps(t *testing.T) {
	in := &Info{}
	in.Tried("new")
	in.SetUpstream("127.0.0.1:3000")
	in.Tried("old") // an app whose kind records no upstream (a uwsgi socket) answers after a pass
	if got := in.Snapshot(); got.App != "old" || got.Upstream != "" {
		t.Fatalf("app %q upstream %q, want app old and no upstream (127.0.0.1:3000 is the new app's)", got.App, got.Upstream)
	}
	in.SetUpstream("10.0.0.2:8000")
	if got := in.Snapshot().Upstream; got != "10.0.0.2:8000" {
		t.Fatalf("upstream %q, want the answering app's 10.0.0.2:8000", got)
	}
}
