// Package metrics owns the gateway's Prometheus instruments: requests by route, app, method, status
// class and protocol, request duration, requests in flight, upstream failures by cause, cascade pass-throughs, the
// health of every application instance, and the retries, retry budget refusals, ejections and breaker
// openings of every balanced instance. Everything is registered on a registry the caller owns (never the
// process-global one), so two gateways in one process keep separate numbers.
//
// The request instruments are fed by Metrics.Middleware, which must run inside middleware.AccessLog: it
// reads the reqinfo record AccessLog attaches (route, apps tried, failures) once the request is done. A
// server that answers without http.Handler counts the same series with RequestStarted and RequestDone,
// which Middleware itself calls.
package metrics

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/reqinfo"
)

// Upstream failure causes, the values of the cause label of switchyard_upstream_errors_total.
const (
	CauseRefused  = "refused"  // nothing listens: connection refused, no such socket, unreachable, no such host
	CauseTimeout  = "timeout"  // the app (or the dial) took longer than its timeout
	CauseReset    = "reset"    // the connection was reset or closed before a complete response header
	CauseProtocol = "protocol" // the app answered something that is not a valid response
	CauseCanceled = "canceled" // the client went away first (not the app's fault, counted apart)
	CauseLimit    = "body_limit"
)

// AppHealth is the health of one application's instances, as its adapters.HealthReporter says.
type AppHealth struct {
	App string `json:"app"`
	// Role is "primary", "delegate" or "route".
	Role string `json:"role"`
	// Tracked is false for apps whose handler does not report health: they count as one healthy instance.
	Tracked   bool                      `json:"tracked"`
	Instances []adapters.InstanceHealth `json:"instances"`
}

// Metrics holds the instruments. Create it with New; a nil *Metrics records nothing.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	inFlight       prometheus.Gauge
	upstreamErrors *prometheus.CounterVec
	passThroughs   *prometheus.CounterVec

	// series caches the instruments of each route and app seen, so that a request costs one map lookup
	// instead of a label hash and lookup per instrument. Its keys come from the configuration (route
	// patterns, app names), never from the request, so it is bounded as the label sets are.
	mu     sync.RWMutex
	series map[seriesKey]*routeSeries
	// errApps are the app labels switchyard_upstream_errors_total has series for (guarded by mu), so
	// Retain can delete those of removed apps.
	errApps map[string]bool
}

type seriesKey struct{ route, app string }

// routeSeries is the instruments of one route and app. A requests counter is made on first use (a
// method and status class never seen has no series), then read without locking.
type routeSeries struct {
	duration     prometheus.Observer
	passThroughs prometheus.Counter
	requests     [len(protocolLabels)][len(methodLabels)][len(classLabels)]atomic.Pointer[prometheus.Counter]
}

// methodLabels and classLabels are the values of the method and status_class labels, by index.
var (
	methodLabels = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "OTHER"}
	classLabels = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "other", "aborted"}
	// protocolLabels are the values of the protocol label, by the request's major version (0: other).
	protocolLabels = [...]string{"other", "http1", "http2", "http3"}
)

// protocolIndex is the protocol label of a request of major version major (http.Request.ProtoMajor):
// http1 (HTTP/1.0 and 1.1), http2, http3, other.
func protocolIndex(major int) int {
	if major >= 1 && major < len(protocolLabels) {
		return major
	}
	return 0
}

const classAborted = len(classLabels) - 1

// routeSeries returns the cached instruments of route and app, making them on first use.
func (m *Metrics) routeSeries(route, app string) *routeSeries {
	k := seriesKey{route, app}
	m.mu.RLock()
	rs := m.series[k]
	m.mu.RUnlock()
	if rs != nil {
		return rs
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rs = m.series[k]; rs == nil {
		rs = &routeSeries{duration: m.duration.WithLabelValues(route, app), passThroughs: m.passThroughs.WithLabelValues(route, app)}
		m.series[k] = rs
	}
	return rs
}

// requestCounter returns the requests counter of route and app for a protocol, method and class index.
func (m *Metrics) requestCounter(rs *routeSeries, route, app string, pi, mi, ci int) prometheus.Counter {
	if c := rs.requests[pi][mi][ci].Load(); c != nil {
		return *c
	}
	// Two requests racing here get the same counter from the vector: storing it twice is harmless.
	c := m.requests.WithLabelValues(route, app, methodLabels[mi], classLabels[ci], protocolLabels[pi])
	rs.requests[pi][mi][ci].Store(&c)
	return c
}

// New registers the instruments on reg. health, when not nil, is called at every scrape and exported as
// switchyard_upstream_instance_healthy (1 healthy, 0 not, -1 not known yet) and
// switchyard_upstream_instance_in_flight, and for apps that track health the counters
// switchyard_upstream_retries_total, switchyard_upstream_retry_budget_exhausted_total,
// switchyard_upstream_ejections_total and switchyard_upstream_breaker_opens_total (labels app, instance);
// it must be safe for concurrent use.
func New(reg prometheus.Registerer, health func() []AppHealth) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_requests_total",
			Help: "Requests answered, by route pattern, answering app, method, status class (1xx..5xx, aborted) and protocol (http1, http2, http3).",
		}, []string{"route", "app", "method", "status_class", "protocol"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchyard_request_duration_seconds",
			Help:    "Time from the request reaching the router to the handler returning (WebSocket sessions included), by route and app.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "app"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchyard_requests_in_flight",
			Help: "Requests being served now.",
		}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_upstream_errors_total",
			Help: "Failed attempts to reach an application, by app and cause (refused, timeout, reset, protocol, canceled, body_limit).",
		}, []string{"app", "cause"}),
		passThroughs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchyard_cascade_pass_throughs_total",
			Help: "Requests that a cascade passed on from the first app to a later one, by route and answering app.",
		}, []string{"route", "app"}),
		series:  map[seriesKey]*routeSeries{},
		errApps: map[string]bool{},
	}
	cs := []prometheus.Collector{m.requests, m.duration, m.inFlight, m.upstreamErrors, m.passThroughs}
	if health != nil {
		cs = append(cs, healthCollector{health})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Middleware records every request passing through next. It must run where reqinfo is attached (inside
// middleware.AccessLog); without a record, route and app are empty. It reads the status from the
// record's recording writer (reqinfo.Info.RecordResponse) and wraps the ResponseWriter only when nobody
// outside records; that wrapper passes Flush, Hijack and, through Unwrap, the rest of
// http.ResponseController on. A panic (aborted response) is counted with status class "aborted" and
// re-raised.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.RequestStarted()
		info := reqinfo.From(r.Context())
		start := info.Start() // the access log's clock reading, when it attached the record
		if start.IsZero() {
			start = time.Now()
		}
		answer := info
		if answer == nil {
			// Library use without AccessLog: a record of our own, for the answer only (it is not attached,
			// so route and app stay empty as documented).
			answer = new(reqinfo.Info)
		}
		w = answer.RecordResponse(w) // unchanged when AccessLog already records
		aborted := true
		defer func() {
			ctx := r.Context()
			s := info.Snapshot()
			d := Done{
				Route: s.Route, App: s.App,
				ProtoMajor: r.ProtoMajor, Method: r.Method,
				Aborted:  aborted,
				Elapsed:  time.Since(start),
				Failures: s.Failures, Tried: len(s.Tried),
				Ctx: ctx,
			}
			if !aborted {
				resp, _ := answer.Response()
				d.Status = resp.Status
				if d.Status == 0 {
					d.Status = http.StatusOK
					if ctx.Err() != nil {
						d.Status = failure.StatusClientClosedRequest
					}
				}
			}
			m.RequestDone(&d)
		}()
		next.ServeHTTP(w, r)
		aborted = false
	})
}

// RequestStarted counts a request in flight. Call RequestDone exactly once for each. A nil m does nothing.
func (m *Metrics) RequestStarted() {
	if m == nil {
		return
	}
	m.inFlight.Inc()
}

// RequestAbandoned ends a request RequestStarted counted that will be counted elsewhere (or not at all):
// it only leaves the in-flight gauge.
func (m *Metrics) RequestAbandoned() {
	if m == nil {
		return
	}
	m.inFlight.Dec()
}

// Done is one finished request as the metrics count it: what Middleware reads from the request and its
// reqinfo record, for a caller that serves requests without the middleware and must count them alike.
type Done struct {
	Route, App string // the reqinfo record's (Snapshot.Route, Snapshot.App); "" none
	ProtoMajor int    // as http.Request.ProtoMajor: 1 for HTTP/1.x, 2, 3; anything else counts as "other"
	Method     string // the request method; a non-standard one counts as "OTHER"
	// Status is the final status: the caller has already made 0 (nothing written) 200, or 499 when the
	// client went away (failure.StatusClientClosedRequest).
	Status int
	// Aborted means a panic passed through: the request counts with status class "aborted" and Status is
	// ignored.
	Aborted bool
	// Elapsed is the request's duration: from the reqinfo record's Start (or the caller's first clock
	// reading) to the end.
	Elapsed  time.Duration
	Failures []reqinfo.Failure // Snapshot.Failures: one upstream error each
	Tried    int               // len(Snapshot.Tried): more than 1 is a cascade pass-through
	// Ctx is the request's context, for Cause of each failure (a cancelled one makes the cause
	// "canceled"); nil is allowed.
	Ctx context.Context
}

// RequestDone ends a request RequestStarted counted: it leaves the in-flight gauge and counts the request
// (route, app, method, status class, protocol), its duration, its upstream errors by cause and a cascade
// pass-through. Once the route's series exist it allocates nothing (only an upstream error does). d is
// not retained. A nil m does nothing.
func (m *Metrics) RequestDone(d *Done) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	class := classAborted
	if !d.Aborted {
		class = classIndex(d.Status)
	}
	rs := m.routeSeries(d.Route, d.App)
	m.requestCounter(rs, d.Route, d.App, protocolIndex(d.ProtoMajor), methodIndex(d.Method), class).Inc()
	rs.duration.Observe(d.Elapsed.Seconds())
	for _, f := range d.Failures {
		m.upstreamErrors.WithLabelValues(f.App, Cause(d.Ctx, f.Err)).Inc()
		m.noteErrApp(f.App)
	}
	if d.Tried > 1 {
		rs.passThroughs.Inc()
	}
}

func (m *Metrics) noteErrApp(app string) {
	m.mu.RLock()
	known := m.errApps[app]
	m.mu.RUnlock()
	if !known {
		m.mu.Lock()
		m.errApps[app] = true
		m.mu.Unlock()
	}
}

// Retain deletes the request, duration, pass-through and upstream error series of every route pattern
// not in routes and every app label not in apps (the route "" of requests no route claimed, and the app ""
// of requests no app answered, always stay). Call it with the labels of the configuration a reload
// installed, so the series of removed routes and apps disappear from /metrics instead of lingering with
// their last values; call it again once the replaced configuration's last request is done, as a request
// still running on it may have recreated one.
func (m *Metrics) Retain(routes, apps []string) {
	if m == nil {
		return
	}
	keepRoute := map[string]bool{"": true}
	for _, r := range routes {
		keepRoute[r] = true
	}
	keepApp := map[string]bool{"": true}
	for _, a := range apps {
		keepApp[a] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.series {
		if keepRoute[k.route] && keepApp[k.app] {
			continue
		}
		m.requests.DeletePartialMatch(prometheus.Labels{"route": k.route, "app": k.app})
		m.duration.DeleteLabelValues(k.route, k.app)
		m.passThroughs.DeleteLabelValues(k.route, k.app)
		delete(m.series, k)
	}
	for a := range m.errApps {
		if !keepApp[a] {
			m.upstreamErrors.DeletePartialMatch(prometheus.Labels{"app": a})
			delete(m.errApps, a)
		}
	}
}

// Cause classifies an error from talking to an application (see the Cause constants). ctx is the
// request's context: a cancelled one means the client went away.
func Cause(ctx context.Context, err error) string {
	var mbe *http.MaxBytesError
	var ne net.Error
	var dnse *net.DNSError
	var oe *net.OpError
	switch {
	case errors.As(err, &mbe):
		return CauseLimit
	case ctx != nil && errors.Is(ctx.Err(), context.Canceled):
		return CauseCanceled
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return CauseTimeout
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.As(err, &dnse):
		return CauseRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return CauseReset
	case errors.As(err, &oe) && oe.Op == "dial":
		return CauseRefused
	case errors.Is(err, context.Canceled):
		return CauseCanceled
	}
	return CauseProtocol
}

// classIndex turns a status into the index of its class in classLabels: "1xx".."5xx"; out-of-range values
// are "other".
func classIndex(code int) int {
	if code >= 100 && code < 600 {
		return code/100 - 1
	}
	return 5 // "other"
}

// methodIndex is the index of m's method label in methodLabels, any non-standard method being "OTHER": it
// keeps the label's cardinality bounded, as a client sending random method names would otherwise create a
// time series per name (a memory exhaustion attack on the gateway and on Prometheus).
func methodIndex(m string) int {
	for i, l := range methodLabels[:len(methodLabels)-1] {
		if m == l {
			return i
		}
	}
	return len(methodLabels) - 1 // "OTHER"
}

// healthCollector exports instance health at scrape time, from whatever gateway is current then.
type healthCollector struct{ health func() []AppHealth }

var (
	healthyDesc = prometheus.NewDesc("switchyard_upstream_instance_healthy",
		"Health of an application instance: 1 healthy, 0 failing or ejected, -1 not known yet. Apps that do not track health report one instance, 1.",
		[]string{"app", "role", "instance"}, nil)
	instanceInFlightDesc = prometheus.NewDesc("switchyard_upstream_instance_in_flight",
		"Requests currently sent to an application instance (apps that track health only).",
		[]string{"app", "role", "instance"}, nil)

	// The counters of balanced apps. They restart at zero when a reload builds the app again (a counter
	// reset, which Prometheus's rate and increase handle).
	retriesDesc = prometheus.NewDesc("switchyard_upstream_retries_total",
		"Failed attempts on an application instance that were sent again to another instance.",
		[]string{"app", "instance"}, nil)
	retryBudgetDesc = prometheus.NewDesc("switchyard_upstream_retry_budget_exhausted_total",
		"Failed attempts on an application instance that were not retried because the retry budget was spent.",
		[]string{"app", "instance"}, nil)
	ejectionsDesc = prometheus.NewDesc("switchyard_upstream_ejections_total",
		"Passive ejections of an application instance after consecutive failed attempts.",
		[]string{"app", "instance"}, nil)
	breakerOpensDesc = prometheus.NewDesc("switchyard_upstream_breaker_opens_total",
		"Openings of an application instance's circuit breaker.",
		[]string{"app", "instance"}, nil)
	unsolicitedDesc = prometheus.NewDesc("switchyard_upstream_unsolicited_responses_total",
		"Pooled connections to an application instance dropped because the app sent bytes no request asked for (an answer that would have reached the next client: response-queue poisoning).",
		[]string{"app", "instance"}, nil)
)

func (healthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- healthyDesc
	ch <- instanceInFlightDesc
	ch <- retriesDesc
	ch <- retryBudgetDesc
	ch <- ejectionsDesc
	ch <- breakerOpensDesc
	ch <- unsolicitedDesc
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[2]string]bool{} // one app may be configured twice (primary and route): report it once
	for _, a := range c.health() {
		for _, in := range a.Instances {
			key := [2]string{a.App, in.Address}
			if seen[key] {
				continue
			}
			seen[key] = true
			v := 0.0
			switch {
			case !in.Known:
				v = -1
			case in.Healthy:
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(healthyDesc, prometheus.GaugeValue, v, a.App, a.Role, in.Address)
			ch <- prometheus.MustNewConstMetric(unsolicitedDesc, prometheus.CounterValue, float64(in.Unsolicited), a.App, in.Address)
			if a.Tracked {
				ch <- prometheus.MustNewConstMetric(instanceInFlightDesc, prometheus.GaugeValue, float64(in.InFlight), a.App, a.Role, in.Address)
				for _, c := range []struct {
					d *prometheus.Desc
					v uint64
				}{{retriesDesc, in.Retries}, {retryBudgetDesc, in.RetryBudgetExhausted}, {ejectionsDesc, in.Ejections}, {breakerOpensDesc, in.BreakerOpens}} {
					ch <- prometheus.MustNewConstMetric(c.d, prometheus.CounterValue, float64(c.v), a.App, in.Address)
				}
			}
		}
	}
}
