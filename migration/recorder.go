package migration

import (
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/reqinfo"
)

// Defaults of a Recorder whose options are zero.
const (
	DefaultLedgerKeys = 1000
	DefaultSamples    = 20
	// SampleBodyLimit is how much of each answer's body a mismatch sample keeps.
	SampleBodyLimit = 4 << 10
)

// maxCauses bounds the distinct mismatch causes counted per route (JSON paths come from the apps'
// answers); further ones are counted under OtherCauses.
const maxCauses = 100

// OtherCauses is the cause under which mismatches are counted once a route counts maxCauses causes.
const OtherCauses = "(other causes)"

// OverflowPath is the ledger path under which requests are counted once the ledger holds its maximum
// number of distinct keys.
const OverflowPath = "(other paths)"

// Latency histogram bucket upper bounds, in seconds (the same as the Prometheus histogram's).
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// RouteMeta describes a route to the Recorder: its pattern (as reqinfo records it), stage and apps.
type RouteMeta struct {
	Pattern       string
	Stage         Stage
	New, Old      string
	CanaryPercent float64
	// Key says what the route's numbers mean: the apps as configured and the stage settings (Spec.Key).
	// A Recorder built with RecorderOptions.Previous continues the numbers of a previous route with the
	// same pattern and key, and starts afresh for one whose key changed.
	Key string
}

// RecorderOptions size a Recorder. Zero values mean the defaults.
type RecorderOptions struct {
	// LedgerKeys caps the distinct (method, route, path template) keys; further ones share OverflowPath.
	LedgerKeys int
	// Samples is the number of mismatch samples kept per route (a ring: newest replace oldest).
	Samples int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Previous is the Recorder of the configuration this one replaces (on a reload), or nil. A route
	// registered with the pattern and key it had there continues its numbers: counters, latency
	// histograms, ledger rows, shadow results and the negative cache (they are shared, so what the old
	// configuration's last requests record still counts). Call Carried once every route is registered.
	Previous *Recorder
}

// Recorder collects what the migration report shows. It is safe for concurrent use; one belongs to one
// built gateway.
type Recorder struct {
	opts    RecorderOptions
	started time.Time

	mu     sync.RWMutex
	routes map[string]*routeStats
	order  []string
	prev   *Recorder // until Carried

	// ledgerKeys counts the distinct ledger keys of every route, against LedgerKeys.
	ledgerKeys atomic.Int64

	updMu   sync.Mutex
	updated chan struct{}
}

// NewRecorder returns an empty Recorder.
func NewRecorder(opts RecorderOptions) *Recorder {
	if opts.LedgerKeys <= 0 {
		opts.LedgerKeys = DefaultLedgerKeys
	}
	if opts.Samples <= 0 {
		opts.Samples = DefaultSamples
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Recorder{opts: opts, started: opts.Now(), routes: map[string]*routeStats{}, prev: opts.Previous,
		updated: make(chan struct{})}
	r.opts.Previous = nil
	return r
}

// ShadowUpdated returns a channel closed at the next recorded shadow comparison (shadow results arrive
// asynchronously: a caller waiting for one reads the report, and if it is not there yet, waits on this
// channel taken before reading).
func (r *Recorder) ShadowUpdated() <-chan struct{} {
	r.updMu.Lock()
	defer r.updMu.Unlock()
	return r.updated
}

func (r *Recorder) notifyShadow() {
	r.updMu.Lock()
	close(r.updated)
	r.updated = make(chan struct{})
	r.updMu.Unlock()
}

type ledgerKey struct{ method, path string }

// routeStats is everything recorded for one route. A reload that leaves the route's migration unchanged
// hands the same routeStats to the new Recorder, so both configurations record into it while the old one
// finishes its requests.
type routeStats struct {
	meta  RouteMeta
	since time.Time
	// lazy marks a route created for requests no registered route claimed (pattern "").
	lazy bool

	mu       sync.Mutex
	apps     map[string]*appStats
	appOrder []string
	ledger   map[ledgerKey]map[string]uint64
	overflow uint64 // requests counted under OverflowPath

	compare    CompareOptions
	compared   uint64
	matched    uint64
	shadowErrs uint64
	causes     map[string]uint64 // mismatched exchanges per cause (Difference.Cause), at most maxCauses keys
	samples    []Mismatch        // ring
	next       int
	// shadowStats reads the current configuration's copier; shadowPrev the one it replaced (whose last
	// copies may still be running) and shadowBase what the ones before that counted.
	shadowStats, shadowPrev func() delegate.ShadowStats
	shadowBase              delegate.ShadowStats
	negCache                *NegativeCache
	// fellBack counts requests the new app never received (delegate.App.FallBack, reqinfo's Unreached).
	fellBack uint64
}

type appStats struct {
	requests, errors uint64
	buckets          [15]uint64 // len(latencyBuckets)+1, the last is +Inf
	sum, max         float64
	timed            uint64
}

func (a *appStats) observe(status int, d time.Duration, timed bool) {
	a.requests++
	if status == 0 || status >= 500 {
		a.errors++
	}
	if !timed {
		return
	}
	s := d.Seconds()
	a.timed++
	a.sum += s
	a.max = math.Max(a.max, s)
	i := sort.SearchFloat64s(latencyBuckets, s)
	a.buckets[i]++
}

// quantile estimates the q-quantile from the histogram, interpolating within the bucket; the open last
// bucket is bounded by the largest observation.
func (a *appStats) quantile(q float64) float64 {
	if a.timed == 0 {
		return 0
	}
	rank := q * float64(a.timed)
	var cum float64
	for i, n := range a.buckets {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			lo := 0.0
			if i > 0 {
				lo = latencyBuckets[i-1]
			}
			hi := a.max
			if i < len(latencyBuckets) {
				hi = math.Min(latencyBuckets[i], a.max)
			}
			if hi < lo {
				hi = lo
			}
			return lo + (hi-lo)*(rank-cum)/float64(n)
		}
		cum += float64(n)
	}
	return a.max
}

// AddRoute registers a route so it appears in the report before any traffic. Registering a pattern
// again replaces its description. With RecorderOptions.Previous, a route whose pattern and key are the
// previous one's continues its numbers.
func (r *Recorder) AddRoute(meta RouteMeta) {
	r.addRoute(meta, false)
}

func (r *Recorder) addRoute(meta RouteMeta, lazy bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rs, ok := r.routes[meta.Pattern]; ok {
		rs.mu.Lock()
		rs.meta = meta
		rs.mu.Unlock()
		return
	}
	rs := r.prev.carry(meta)
	if rs == nil {
		rs = &routeStats{meta: meta, since: r.opts.Now(), lazy: lazy, apps: map[string]*appStats{}, ledger: map[ledgerKey]map[string]uint64{}}
	} else {
		rs.mu.Lock()
		rs.meta = meta
		r.ledgerKeys.Add(int64(len(rs.ledger)))
		rs.mu.Unlock()
	}
	r.routes[meta.Pattern] = rs
	r.order = append(r.order, meta.Pattern)
}

// carry returns the stats of p's route with meta's pattern and key, or nil (p may be nil).
func (p *Recorder) carry(meta RouteMeta) *routeStats {
	if p == nil {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	rs := p.routes[meta.Pattern]
	if rs == nil || rs.lazy || rs.meta.Key != meta.Key {
		return nil
	}
	return rs
}

// Carried ends the carrying over from RecorderOptions.Previous (and drops the reference to it, so
// recorders do not chain across reloads): it takes over the numbers of requests no route claimed, and
// returns the patterns of the previous routes whose numbers were not carried, because the route changed
// (registered again with another key) or was removed. It returns nils without a previous Recorder.
func (r *Recorder) Carried() (reset, removed []string) {
	r.mu.Lock()
	prev := r.prev
	r.prev = nil
	r.mu.Unlock()
	if prev == nil {
		return nil, nil
	}
	prev.mu.RLock()
	order := append([]string(nil), prev.order...)
	routes := make([]*routeStats, len(order))
	for i, pat := range order {
		routes[i] = prev.routes[pat]
	}
	prev.mu.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, pat := range order {
		old, now := routes[i], r.routes[pat]
		switch {
		case old.lazy && now == nil:
			r.routes[pat] = old
			r.order = append(r.order, pat)
			old.mu.Lock()
			r.ledgerKeys.Add(int64(len(old.ledger)))
			old.mu.Unlock()
		case old.lazy || now == old:
		case now == nil:
			removed = append(removed, pat)
		default:
			reset = append(reset, pat)
		}
	}
	return reset, removed
}

// route returns the stats of pattern, creating an entry for an unregistered one (requests no route
// claimed are recorded under "").
func (r *Recorder) route(pattern string) *routeStats {
	r.mu.RLock()
	rs := r.routes[pattern]
	r.mu.RUnlock()
	if rs != nil {
		return rs
	}
	r.addRoute(RouteMeta{Pattern: pattern}, true)
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.routes[pattern]
}

// Record counts one finished request: the route that claimed it, the app that answered, its status (0 for
// an aborted answer) and its duration. timed=false leaves it out of the latency histogram (protocol
// switches, whose duration is the connection's).
func (r *Recorder) Record(method, path string, s reqinfo.Snapshot, status int, d time.Duration, timed bool) {
	rs := r.route(s.Route)
	app := s.App
	if app == "" {
		app = "(none)"
	}
	rs.mu.Lock()
	as := rs.apps[app]
	if as == nil {
		as = &appStats{}
		rs.apps[app] = as
		rs.appOrder = append(rs.appOrder, app)
	}
	as.observe(status, d, timed)
	if s.Unreached != "" && s.Unreached == rs.meta.New {
		rs.fellBack++
	}

	// The path's template is built in buf and looked up through a view of it (no allocation per request
	// for a template seen before); a new ledger key gets its own copy.
	var buf [128]byte
	t := appendTemplate(buf[:0], path)
	method = ledgerMethod(method)
	counts := rs.ledger[ledgerKey{method: method, path: unsafe.String(unsafe.SliceData(t), len(t))}]
	if counts == nil {
		k := ledgerKey{method: method, path: string(t)}
		if r.ledgerKeys.Load() >= int64(r.opts.LedgerKeys) {
			rs.overflow++
			k.path = OverflowPath
			counts = rs.ledger[k]
		}
		if counts == nil {
			counts = map[string]uint64{}
			rs.ledger[k] = counts
			r.ledgerKeys.Add(1)
		}
	}
	counts[app]++
	rs.mu.Unlock()
}

// ledgerMethod keeps the standard methods and folds any other into "OTHER", so a client inventing methods
// cannot grow the ledger.
func ledgerMethod(m string) string {
	// The constants, never m: m may be a view of a connection's buffer (the fast lane's records), and
	// the ledger keeps its keys.
	for _, std := range [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace} {
		if m == std {
			return std
		}
	}
	return "OTHER"
}

// Template turns a path into a path template for the ledger: segments that look like identifiers (all
// digits, UUIDs, hex or base64-ish tokens of 16+ characters with a digit, anything over 40 bytes) become
// {id}. "/orders/42/items/9f8e7d6c5b4a39281706" gives "/orders/{id}/items/{id}".
func Template(path string) string {
	if !templated(path) {
		return path // fast path: nothing looks like an id
	}
	return string(appendTemplate(make([]byte, 0, len(path)+8), path))
}

// templated reports whether Template may change path: it holds a digit or is long (a segment over 40
// bytes is an id, and a template is cut at 256 bytes).
func templated(path string) bool {
	if len(path) >= 256 {
		return true
	}
	for i := 0; i < len(path); i++ { // not strings.ContainsAny, which builds a set of the digits per call
		if '0' <= path[i] && path[i] <= '9' {
			return true
		}
	}
	return false
}

// appendTemplate appends Template(path) to dst.
func appendTemplate(dst []byte, path string) []byte {
	if !templated(path) {
		return append(dst, path...)
	}
	start := len(dst)
	for {
		seg, rest, more := strings.Cut(path, "/")
		if looksLikeID(seg) {
			dst = append(dst, "{id}"...)
		} else {
			dst = append(dst, seg...)
		}
		if !more {
			break
		}
		dst = append(dst, '/')
		path = rest
	}
	if len(dst)-start > 256 {
		dst = append(dst[:start+256], "..."...)
	}
	return dst
}

func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	if len(s) > 40 {
		return true
	}
	digits, letters := 0, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letters++
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	if digits == len(s) {
		return true
	}
	return digits > 0 && len(s) >= 16
}

// Middleware records every request that passes through it, once it is done, reading the reqinfo record
// (attaching one when there is none) and the answer's status from the record's recording writer
// (reqinfo.Info.RecordResponse, installed here only when nobody outside records). Place it inside
// middleware.AccessLog so both see the same record and the writer is wrapped once.
// An aborted answer (a panic passing through) is recorded as an error and re-raised.
func (r *Recorder) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		info := reqinfo.From(req.Context())
		if info == nil {
			req, info = reqinfo.Attach(req)
		}
		w = info.RecordResponse(w) // unchanged when a middleware outside (AccessLog) already records
		start := info.Start()      // the access log's clock reading (or this Attach's)
		done := false
		defer func() {
			resp, _ := info.Response()
			status := resp.Status
			if status == 0 && done {
				status = http.StatusOK // a handler that wrote nothing answered 200
				if req.Context().Err() != nil {
					status = 499 // the client went away before an answer
				}
			}
			r.Record(req.Method, req.URL.Path, info.Snapshot(), status, time.Since(start), !resp.Hijacked)
		}()
		next.ServeHTTP(w, req)
		done = true
	})
}

// Mismatch is one shadow exchange whose answers differed.
type Mismatch struct {
	Time   time.Time `json:"time"`
	Method string    `json:"method"`
	Path   string    `json:"path"`
	Diff   []string  `json:"diff"`
	// Causes name what differed, without values (Difference.Cause): "status", "header Content-Type",
	// "body $.price".
	Causes []string `json:"causes"`
	Served Sample   `json:"served"`
	Shadow Sample   `json:"shadow"`
}

// Sample is an answer as a mismatch sample keeps it: the body as text, at most SampleBodyLimit bytes.
type Sample struct {
	Status    int         `json:"status"`
	Header    http.Header `json:"header,omitempty"`
	Body      string      `json:"body"`
	Truncated bool        `json:"truncated,omitempty"`
	Error     string      `json:"error,omitempty"`
	Millis    float64     `json:"ms"`
}

// ShadowObserver returns the Observe function for the Shadow of route pattern: it compares each exchange
// with opts and counts matches, keeping mismatches as samples. stats, when non-nil, is read for the
// report's queue counters (pass the Shadow's Stats).
func (r *Recorder) ShadowObserver(pattern string, opts CompareOptions) func(delegate.Exchange) {
	rs := r.route(pattern)
	rs.mu.Lock()
	rs.compare = opts
	rs.mu.Unlock()
	return func(ex delegate.Exchange) {
		diffs, more := Diff(ex.Served, ex.Shadow, opts)
		defer r.notifyShadow()
		rs.mu.Lock()
		defer rs.mu.Unlock()
		rs.compared++
		switch {
		case ex.Shadow.Err != "":
			rs.shadowErrs++
		case len(diffs) == 0:
			rs.matched++
			return
		}
		diff := make([]string, 0, len(diffs)+1)
		var causes []string
		for _, d := range diffs {
			diff = append(diff, d.Text)
			if c := d.Cause(); !slices.Contains(causes, c) {
				causes = append(causes, c)
			}
		}
		if more {
			diff = append(diff, "... more differences not shown")
		}
		if rs.causes == nil {
			rs.causes = map[string]uint64{}
		}
		for _, c := range causes {
			if _, known := rs.causes[c]; !known && len(rs.causes) >= maxCauses {
				c = OtherCauses
			}
			rs.causes[c]++
		}
		path := ex.Path
		if ex.Query != "" {
			path += "?" + ex.Query
		}
		m := Mismatch{Time: r.opts.Now(), Method: ex.Method, Path: path, Diff: diff, Causes: causes,
			Served: sampleAnswer(ex.Served), Shadow: sampleAnswer(ex.Shadow)}
		if len(rs.samples) < r.opts.Samples {
			rs.samples = append(rs.samples, m)
		} else {
			rs.samples[rs.next] = m
		}
		rs.next = (rs.next + 1) % r.opts.Samples
	}
}

// AttachShadow makes the report show a Shadow's queue counters for route pattern. On a route carried over
// a reload, the counters of the copiers it had before are kept and added.
func (r *Recorder) AttachShadow(pattern string, stats func() delegate.ShadowStats) {
	rs := r.route(pattern)
	rs.mu.Lock()
	if rs.shadowPrev != nil {
		rs.shadowBase = addShadowStats(rs.shadowBase, rs.shadowPrev())
	}
	rs.shadowPrev, rs.shadowStats = rs.shadowStats, stats
	rs.mu.Unlock()
}

func addShadowStats(a, b delegate.ShadowStats) delegate.ShadowStats {
	return delegate.ShadowStats{Queued: a.Queued + b.Queued, Completed: a.Completed + b.Completed, Dropped: a.Dropped + b.Dropped, Skipped: a.Skipped + b.Skipped}
}

// negativeCache returns route pattern's negative cache: the one it had before a reload that carried the
// route over (same key, so same size and TTL: the misses it holds are still worth trusting), else a new
// one made with mk.
func (r *Recorder) negativeCache(pattern string, mk func() *NegativeCache) *NegativeCache {
	rs := r.route(pattern)
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.negCache == nil {
		rs.negCache = mk()
	}
	return rs.negCache
}

// AttachNegativeCache makes the report show a NegativeCache's counters for route pattern.
func (r *Recorder) AttachNegativeCache(pattern string, c *NegativeCache) {
	rs := r.route(pattern)
	rs.mu.Lock()
	rs.negCache = c
	rs.mu.Unlock()
}

// sampleAnswer copies an answer for a sample, keeping SampleBodyLimit body bytes (decoded when gzipped)
// and no Set-Cookie header (session ids do not belong in a report).
func sampleAnswer(a delegate.Answer) Sample {
	out := Sample{Status: a.Status, Header: a.Header.Clone(), Truncated: a.Truncated, Error: a.Err,
		Millis: float64(a.Duration.Microseconds()) / 1000}
	out.Header.Del("Set-Cookie")
	body := decoded(a)
	if len(body) > SampleBodyLimit {
		body = body[:SampleBodyLimit]
		out.Truncated = true
	}
	out.Body = strings.ToValidUTF8(string(body), "\ufffd")
	return out
}
