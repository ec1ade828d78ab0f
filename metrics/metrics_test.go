package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/reqinfo"
)

// value returns the value of the sample of family name whose labels include want (-1 if none).
func value(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	sample:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue sample
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

func refusedErr(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	return err
}

func resetErr(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*net.TCPConn).SetLinger(0) // close with RST
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return err // the RST can win the race with connect(): that is a reset too
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

func protocolErr() error {
	_, err := http.ReadResponse(bufio.NewReader(strings.NewReader("NOT HTTP AT ALL\r\n\r\n")), nil)
	return err
}

func TestCauseClassifiesRealErrors(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	_, noSock := net.Dial("unix", filepath.Join(t.TempDir(), "absent.sock"))
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want string
	}{
		{"a closed port is refused", context.Background(), refusedErr(t), CauseRefused},
		{"a missing unix socket is refused", context.Background(), noSock, CauseRefused},
		{"a deadline is a timeout", context.Background(), context.DeadlineExceeded, CauseTimeout},
		{"a connection closed with RST is reset", context.Background(), resetErr(t), CauseReset},
		{"an early EOF is reset", context.Background(), fmt.Errorf("reading the header: %w", io.ErrUnexpectedEOF), CauseReset},
		{"garbage instead of a response is protocol", context.Background(), protocolErr(), CauseProtocol},
		{"a client that went away is canceled", canceled, context.Canceled, CauseCanceled},
		{"an oversized body is body_limit", context.Background(), &http.MaxBytesError{Limit: 1}, CauseLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Cause(tt.ctx, tt.err); got != tt.want {
				t.Errorf("Cause(%v) = %s, want %s", tt.err, got, tt.want)
			}
		})
	}
	if !errors.Is(resetErr(t), syscall.ECONNRESET) {
		t.Log("note: the RST case did not surface ECONNRESET on this kernel")
	}
}

// front mimics the gateway: reqinfo attached (as middleware.AccessLog does), then the metrics middleware.
func front(m *Metrics, h http.Handler) http.Handler {
	inner := m.Middleware(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = reqinfo.Attach(r)
		inner.ServeHTTP(w, r)
	})
}

func TestMiddlewareRecordsRequestsFailuresAndPassThroughs(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, func() []AppHealth {
		return []AppHealth{
			{App: "http://a", Role: "primary", Tracked: true, Instances: []adapters.InstanceHealth{
				{Address: "http://a1", Known: true, Healthy: true, InFlight: 3},
				{Address: "http://a2", Known: true, Healthy: false},
				{Address: "http://a3"},
			}},
			{App: "status:404", Role: "route", Instances: []adapters.InstanceHealth{{Address: "status:404", Known: true, Healthy: true}}},
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	refused := refusedErr(t)
	srv := httptest.NewServer(front(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := reqinfo.From(r.Context())
		switch r.URL.Path {
		case "/cascade":
			in.SetRoute("*")
			in.Tried("http://new")
			in.Failed("http://new", "127.0.0.1:1", refused)
			in.Tried("http://legacy")
			w.WriteHeader(http.StatusNotFound)
		case "/abort":
			in.SetRoute("/abort/")
			in.Tried("http://a")
			w.Write([]byte("partial"))
			panic(http.ErrAbortHandler)
		default:
			in.SetRoute("/")
			in.Tried("http://a")
			w.Write([]byte("ok"))
		}
	})))
	defer srv.Close()
	srv.Config.ErrorLog = nil
	for _, p := range []string{"/x", "/x", "/cascade"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	req, _ := http.NewRequest("BREW", srv.URL+"/x", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	if _, err := http.Get(srv.URL + "/abort"); err == nil {
		t.Log("aborted response read without error")
	}

	tests := []struct {
		name   string
		metric string
		labels map[string]string
		want   float64
	}{
		{"successful requests count by route, app, method and class", "switchyard_requests_total", map[string]string{"route": "/", "app": "http://a", "method": "GET", "status_class": "2xx"}, 2},
		{"unknown methods share one label value", "switchyard_requests_total", map[string]string{"method": "OTHER"}, 1},
		{"the cascade answer counts under the app that answered", "switchyard_requests_total", map[string]string{"route": "*", "app": "http://legacy", "status_class": "4xx"}, 1},
		{"an aborted response counts as aborted", "switchyard_requests_total", map[string]string{"route": "/abort/", "status_class": "aborted"}, 1},
		{"an upstream failure counts by cause", "switchyard_upstream_errors_total", map[string]string{"app": "http://new", "cause": CauseRefused}, 1},
		{"a pass-through counts once", "switchyard_cascade_pass_throughs_total", map[string]string{"route": "*", "app": "http://legacy"}, 1},
		{"durations are observed", "switchyard_request_duration_seconds", map[string]string{"route": "/"}, 3},
		{"nothing is in flight afterwards", "switchyard_requests_in_flight", nil, 0},
		{"a healthy instance is 1", "switchyard_upstream_instance_healthy", map[string]string{"instance": "http://a1"}, 1},
		{"an unhealthy instance is 0", "switchyard_upstream_instance_healthy", map[string]string{"instance": "http://a2"}, 0},
		{"an unknown instance is -1", "switchyard_upstream_instance_healthy", map[string]string{"instance": "http://a3"}, -1},
		{"in-flight per instance comes from the reporter", "switchyard_upstream_instance_in_flight", map[string]string{"instance": "http://a1"}, 3},
		{"untracked apps have no in-flight series", "switchyard_upstream_instance_in_flight", map[string]string{"instance": "status:404"}, -1},
		{"untracked apps have no retry series", "switchyard_upstream_retries_total", map[string]string{"instance": "status:404"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := value(t, reg, tt.metric, tt.labels); got != tt.want {
				t.Errorf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
}

func TestTwoRegistriesStayApart(t *testing.T) {
	r1, r2 := prometheus.NewRegistry(), prometheus.NewRegistry()
	m1, err1 := New(r1, nil)
	_, err2 := New(r2, nil)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	front(m1, http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if v := value(t, r2, "switchyard_requests_total", nil); v != -1 {
		t.Errorf("the second registry saw the first gateway's request: %v", v)
	}
	if v := value(t, r1, "switchyard_requests_total", map[string]string{"status_class": "4xx"}); v != 1 {
		t.Errorf("first registry: %v, want 1", v)
	}
}

func BenchmarkMiddleware(b *testing.B) {
	m, _ := New(prometheus.NewRegistry(), nil)
	h := front(m, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in := reqinfo.From(r.Context())
		in.SetRoute("/")
		in.Tried("http://a")
		w.WriteHeader(204)
	}))
	r := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
