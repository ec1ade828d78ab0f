package metrics

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/reqinfo"
)

// TestRequestDoneMovesTheSeriesMiddlewareMoves serves requests through Middleware on one registry and
// counts the same requests, described by hand as a Done, with RequestStarted and RequestDone on another:
// every series (label set and value; a histogram's sample count) must be the same on both.
func TestRequestDoneMovesTheSeriesMiddlewareMoves(t *testing.T) {
	refused := refusedErr(t)
	type request struct {
		method string
		major  int
		cancel bool // the client goes away before the handler returns
		serve  func(w http.ResponseWriter, in *reqinfo.Info)
		done   Done // Ctx is the request's, Elapsed is irrelevant
	}
	requests := []request{{
		method: "GET", major: 1,
		serve: func(w http.ResponseWriter, in *reqinfo.Info) {
			in.SetRoute("/")
			in.Tried("http://a")
			w.Write([]byte("ok"))
		},
		done: Done{Route: "/", App: "http://a", ProtoMajor: 1, Method: "GET", Status: 200, Tried: 1},
	}, {
		method: "POST", major: 2,
		serve: func(w http.ResponseWriter, in *reqinfo.Info) {
			in.SetRoute("*")
			in.Tried("http://new")
			in.Failed("http://new", "127.0.0.1:1", refused)
			in.Tried("http://legacy")
			w.WriteHeader(http.StatusNotFound)
		},
		done: Done{Route: "*", App: "http://legacy", ProtoMajor: 2, Method: "POST", Status: 404,
			Failures: []reqinfo.Failure{{App: "http://new", Upstream: "127.0.0.1:1", Err: refused}}, Tried: 2},
	}, {
		method: "BREW", major: 3, // nothing written: 200
		serve: func(w http.ResponseWriter, in *reqinfo.Info) { in.SetRoute("/") },
		done:  Done{Route: "/", ProtoMajor: 3, Method: "BREW", Status: 200},
	}, {
		method: "GET", major: 9, cancel: true, // the client went away: 499, and the failure is "canceled"
		serve: func(w http.ResponseWriter, in *reqinfo.Info) {
			in.SetRoute("/")
			in.Tried("http://a")
			in.Failed("http://a", "127.0.0.1:2", context.Canceled)
		},
		done: Done{Route: "/", App: "http://a", ProtoMajor: 9, Method: "GET", Status: 499,
			Failures: []reqinfo.Failure{{App: "http://a", Upstream: "127.0.0.1:2", Err: context.Canceled}}, Tried: 1},
	}, {
		method: "DELETE", major: 1, // a panic passing through: aborted, whatever was sent
		serve: func(w http.ResponseWriter, in *reqinfo.Info) {
			in.SetRoute("/abort/")
			in.Tried("http://a")
			w.Write([]byte("partial"))
			panic(http.ErrAbortHandler)
		},
		done: Done{Route: "/abort/", App: "http://a", ProtoMajor: 1, Method: "DELETE", Status: 200, Aborted: true, Tried: 1},
	}}

	viaMiddleware, viaDone := prometheus.NewRegistry(), prometheus.NewRegistry()
	mm, err1 := New(viaMiddleware, nil)
	md, err2 := New(viaDone, nil)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	for i, rq := range requests {
		ctx, cancel := context.WithCancel(context.Background())
		h := front(mm, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rq.cancel {
				cancel()
			}
			rq.serve(w, reqinfo.From(r.Context()))
		}))
		r := httptest.NewRequestWithContext(ctx, rq.method, "/", nil)
		r.ProtoMajor = rq.major
		func() {
			defer func() {
				if p := recover(); p != nil && p != http.ErrAbortHandler {
					panic(p)
				}
			}()
			h.ServeHTTP(httptest.NewRecorder(), r)
		}()

		md.RequestStarted()
		d := rq.done
		d.Ctx, d.Elapsed = ctx, time.Duration(i)*time.Microsecond
		md.RequestDone(&d)
		cancel()
	}

	got, want := series(t, viaDone), series(t, viaMiddleware)
	if !slices.Equal(got, want) {
		t.Errorf("RequestDone's series:\n%s\nMiddleware's:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The comparison is only worth something if the requests reached every request series.
	for _, name := range []string{"switchyard_requests_total{app=\"http://a\",method=\"DELETE\",protocol=\"http1\",route=\"/abort/\",status_class=\"aborted\"} 1",
		"switchyard_upstream_errors_total{app=\"http://new\",cause=\"refused\"} 1",
		"switchyard_upstream_errors_total{app=\"http://a\",cause=\"canceled\"} 1",
		"switchyard_requests_total{app=\"http://a\",method=\"GET\",protocol=\"other\",route=\"/\",status_class=\"4xx\"} 1",
		"switchyard_cascade_pass_throughs_total{app=\"http://legacy\",route=\"*\"} 1",
		"switchyard_requests_in_flight{} 0"} {
		if !slices.Contains(want, name) {
			t.Errorf("no series %s among\n%s", name, strings.Join(want, "\n"))
		}
	}
}

// series lists every sample of reg as `name{labels} value`, a histogram by its sample count.
func series(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				v = float64(m.Histogram.GetSampleCount())
			}
			out = append(out, fmt.Sprintf("%s{%s} %v", f.GetName(), strings.Join(ls, ","), v))
		}
	}
	slices.Sort(out)
	return out
}

func TestRequestStartedAndDoneOnNilMetricsDoNothing(t *testing.T) {
	var m *Metrics
	m.RequestStarted()
	m.RequestDone(&Done{Route: "/", Status: 200})
}

// TestRequestDoneAllocatesNothingOnceASeriesExists: a caller counting requests without the middleware
// pays no allocation either (a Done on the stack, the series cached).
func TestRequestDoneAllocatesNothingOnceASeriesExists(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts need the full runs")
	}
	reg := prometheus.NewRegistry()
	m, err := New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	f := func() {
		m.RequestStarted()
		d := Done{Route: "/api/", App: "http://a", ProtoMajor: 1, Method: "GET", Status: 204, Elapsed: time.Millisecond, Tried: 2, Ctx: ctx}
		m.RequestDone(&d)
	}
	if n := testing.AllocsPerRun(1000, f); n != 0 {
		t.Fatalf("allocations per request = %v, want 0", n)
	}
	if got := value(t, reg, "switchyard_requests_total", map[string]string{"route": "/api/", "status_class": "2xx"}); got != 1001 {
		t.Fatalf("switchyard_requests_total = %v, want 1001", got)
	}
}
