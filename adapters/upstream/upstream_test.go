package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

func mustConfig(t testing.TB, query string) Config {
	t.Helper()
	o, err := adapters.ParseOptions(query)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if left := o.Unused(); len(left) > 0 {
		t.Fatalf("options left untaken: %v", left)
	}
	return c
}

func newSet(t testing.TB, n int, query string, probe Probe) *Set {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("http://10.0.0.%d:8000", i+1)
	}
	s, err := New("test", addrs, mustConfig(t, query), probe, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fakeClock is a settable clock for the Set and the budget.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, query, wantErr string
	}{
		{name: "no options give the defaults", query: ""},
		{name: "every option is accepted", query: "lb=hash&hash_key=cookie:sid&retries=3&retry_budget=50&retry_budget_min=5&max_fails=2&fail_timeout=1s&fail_on_5xx=true&health_path=/healthz&health_host=app.example.com:8000&health_interval=1s&health_timeout=100ms&health_status=200,204&healthy_threshold=2&unhealthy_threshold=3&breaker=true&breaker_failures=3&breaker_timeout=5s&breaker_half_open=2"},
		{name: "an unknown policy is refused with the list", query: "lb=random", wantErr: "expected one of round_robin"},
		{name: "hash needs a key", query: "lb=hash", wantErr: "expected header:NAME or cookie:NAME"},
		{name: "a hash key without hash is refused", query: "hash_key=header:X-User", wantErr: "only applies to lb=hash"},
		{name: "a malformed hash key is refused", query: "lb=hash&hash_key=query:x", wantErr: "hash_key"},
		{name: "health options need health_path", query: "health_interval=1s", wantErr: "needs health_path"},
		{name: "a relative health path is refused", query: "health_path=healthz", wantErr: "absolute path"},
		{name: "health_host needs health_path", query: "health_host=app.example.com", wantErr: "needs health_path"},
		{name: "an empty health host is refused", query: "health_path=/h&health_host=", wantErr: "health_host"},
		{name: "a health host with a path is refused", query: "health_path=/h&health_host=a.example/x", wantErr: "health_host"},
		{name: "a health host with a space is refused", query: "health_path=/h&health_host=a%20b", wantErr: "health_host"},
		{name: "a bad status set is refused", query: "health_path=/h&health_status=2x", wantErr: "health_status"},
		{name: "breaker thresholds need breaker", query: "breaker_failures=3", wantErr: "needs breaker=true"},
		{name: "a connect-only check needs no path", query: "health_check=connect&health_interval=1s&health_timeout=100ms&unhealthy_threshold=2"},
		{name: "a connect-only check takes no path", query: "health_check=connect&health_path=/h", wantErr: "drop health_path"},
		{name: "a connect-only check takes no host", query: "health_check=connect&health_host=a.example", wantErr: "health_host applies to requests"},
		{name: "a request check needs a path", query: "health_check=request", wantErr: "needs health_path"},
		{name: "an unknown check kind is refused", query: "health_check=ping", wantErr: `health_check="ping": expected request or connect`},
		{name: "too many retries are refused", query: "retries=11", wantErr: "retries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := adapters.ParseOptions(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseConfig(o)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if err == nil && len(o.Unused()) > 0 {
				t.Fatalf("untaken: %v", o.Unused())
			}
		})
	}
	c := mustConfig(t, "")
	if c.Policy != "round_robin" || c.Retries != 2 || c.HealthInterval != 5*time.Second || !c.HealthStatus.Match(204) || c.HealthStatus.Match(301) || c.MaxFails != 1 {
		t.Errorf("defaults = %+v", c)
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{"", "lb=hash&hash_key=header:X-User", "health_path=/h&health_status=2xx,301", "health_path=/h&health_host=[::1]:80", "breaker=true&breaker_timeout=1s", "health_status=", "hash_key=cookie:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		o, err := adapters.ParseOptions(q)
		if err != nil {
			return
		}
		c, err := ParseConfig(o)
		if err != nil {
			return
		}
		if c.HealthPath != "" && (c.HealthInterval <= 0 || c.HealthTimeout <= 0) {
			t.Fatalf("%q: health checks without a positive interval and timeout: %+v", q, c)
		}
		if c.HealthHost != "" && !validHost(c.HealthHost) {
			t.Fatalf("%q: accepted health host %q", q, c.HealthHost)
		}
		if c.Policy == "hash" && c.HashKey.Name == "" {
			t.Fatalf("%q: hash policy without a key", q)
		}
	})
}

func FuzzParseStatusSet(f *testing.F) {
	for _, s := range []string{"2xx", "200,204", "5XX", "600", "1xx,", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseStatusSet(s)
		if err != nil {
			return
		}
		for code := -1; code < 700; code++ {
			if set.Match(code) && (code < 100 || code > 599) {
				t.Fatalf("%q matches impossible status %d", s, code)
			}
		}
	})
}

// pick runs one Acquire/Done round and returns the instance index.
func pick(t testing.TB, s *Set, r *http.Request) int {
	t.Helper()
	a, err := s.Acquire(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Done(r.Context(), nil, 200)
	return a.Instance.Index()
}

func TestPolicyDistribution(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	tests := []struct {
		name  string
		query string
		check func(t *testing.T, counts []int)
	}{
		{name: "round robin spreads exactly evenly", query: "", check: func(t *testing.T, c []int) {
			for i, n := range c {
				if n != 100 {
					t.Errorf("instance %d got %d of 300", i, n)
				}
			}
		}},
		{name: "least requests spreads evenly when nothing stays in flight", query: "lb=least_requests", check: func(t *testing.T, c []int) {
			for i, n := range c {
				if n != 100 {
					t.Errorf("instance %d got %d of 300", i, n)
				}
			}
		}},
		{name: "p2c reaches every instance", query: "lb=p2c", check: func(t *testing.T, c []int) {
			for i, n := range c {
				if n < 50 {
					t.Errorf("instance %d got %d of 300", i, n)
				}
			}
		}},
		{name: "first sends everything to the first instance", query: "lb=first", check: func(t *testing.T, c []int) {
			if c[0] != 300 {
				t.Errorf("counts = %v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSet(t, 3, tt.query, nil)
			counts := make([]int, 3)
			for range 300 {
				counts[pick(t, s, r)]++
			}
			tt.check(t, counts)
		})
	}
}

func TestLeastRequestsAvoidsBusyInstances(t *testing.T) {
	for _, lb := range []string{"least_requests", "p2c"} {
		t.Run(lb+" never picks the busiest of three", func(t *testing.T) {
			s := newSet(t, 3, "lb="+lb, nil)
			r := httptest.NewRequest("GET", "/", nil)
			// Hold 5 attempts on instance 0 and 2 on instance 1.
			var held []*Attempt
			for _, want := range []int{0, 0, 0, 0, 0, 1, 1} {
				a, err := s.claimForTest(want)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, a)
			}
			for range 100 {
				if got := pick(t, s, r); got == 0 {
					t.Fatalf("%s picked the instance with 5 in flight", lb)
				}
			}
			for _, a := range held {
				a.Done(r.Context(), nil, 200)
			}
		})
	}
}

// claimForTest holds an attempt on instance i.
func (s *Set) claimForTest(i int) (*Attempt, error) {
	a, why := s.claim(s.insts[i], s.now().UnixNano())
	if a == nil {
		return nil, fmt.Errorf("instance %d unavailable: %d", i, why)
	}
	return a, nil
}

func TestHashIsStickyAndRemapsOnlyTheRemovedInstancesKeys(t *testing.T) {
	s := newSet(t, 5, "lb=hash&hash_key=header:X-User", nil)
	key := func(i int) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-User", fmt.Sprintf("user-%d", i))
		return r
	}
	const keys = 2000
	before := make([]int, keys)
	counts := make([]int, 5)
	for i := range keys {
		before[i] = pick(t, s, key(i))
		counts[before[i]]++
		if again := pick(t, s, key(i)); again != before[i] {
			t.Fatalf("key %d went to %d then %d", i, before[i], again)
		}
	}
	for i, n := range counts {
		if n < keys/5/2 {
			t.Errorf("instance %d holds %d of %d keys: poor spread %v", i, n, keys, counts)
		}
	}
	// Take instance 2 out (ejected): only its keys may move.
	s.insts[2].down.Store(true)
	moved := 0
	for i := range keys {
		got := pick(t, s, key(i))
		if before[i] == 2 {
			if got == 2 {
				t.Fatalf("key %d still on the removed instance", i)
			}
			moved++
		} else if got != before[i] {
			t.Fatalf("key %d moved from %d to %d though its instance is up", i, before[i], got)
		}
	}
	if moved != counts[2] {
		t.Fatalf("moved %d keys, want %d", moved, counts[2])
	}
	// A request without the key still gets an instance.
	pick(t, s, httptest.NewRequest("GET", "/", nil))
}

func TestHashByCookie(t *testing.T) {
	s := newSet(t, 3, "lb=hash&hash_key=cookie:session", nil)
	r := httptest.NewRequest("GET", "/", nil)
	r.AddCookie(&http.Cookie{Name: "session", Value: "abc"})
	first := pick(t, s, r)
	for range 20 {
		if got := pick(t, s, r); got != first {
			t.Fatalf("cookie key went to %d then %d", first, got)
		}
	}
}

func TestPassiveEjectionAndRecovery(t *testing.T) {
	clk := &fakeClock{}
	clk.advance(time.Hour)
	s := newSet(t, 2, "lb=first&max_fails=2&fail_timeout=10s", nil)
	s.now = clk.now
	r := httptest.NewRequest("GET", "/", nil)
	refused := errors.New("connection refused")

	fail := func() {
		a, err := s.Acquire(r, nil)
		if err != nil || a.Instance.Index() != 0 {
			t.Fatalf("want instance 0, got %v %v", a, err)
		}
		a.Done(r.Context(), refused, 0)
	}
	fail()
	if got := pick(t, s, r); got != 0 {
		t.Fatalf("ejected after one failure of max_fails=2 (picked %d)", got)
	}
	// The success reset the count: two more consecutive failures are needed.
	fail()
	fail()
	if got := pick(t, s, r); got != 1 {
		t.Fatalf("instance 0 not ejected after 2 consecutive failures (picked %d)", got)
	}
	if h := s.Health(); h[0].Healthy || h[0].ConsecutiveFailures != 2 || h[0].LastError != "connection refused" || h[0].Unavailable != "ejected after failures" {
		t.Fatalf("health of the ejected instance = %+v", h[0])
	}
	clk.advance(10 * time.Second)
	// Half-open: exactly one trial goes to instance 0; while it is in flight the others go elsewhere.
	trial, err := s.Acquire(r, nil)
	if err != nil || trial.Instance.Index() != 0 {
		t.Fatalf("after fail_timeout the first pick should be the trial on 0, got %v %v", trial, err)
	}
	if got := pick(t, s, r); got != 1 {
		t.Fatalf("a second request joined the half-open trial")
	}
	trial.Done(r.Context(), refused, 0) // the trial fails: ejected again at once
	if got := pick(t, s, r); got != 1 {
		t.Fatalf("a failed trial did not eject again")
	}
	clk.advance(10 * time.Second)
	if got := pick(t, s, r); got != 0 { // the trial succeeds
		t.Fatalf("want the trial on 0, got %d", got)
	}
	if got := pick(t, s, r); got != 0 {
		t.Fatalf("instance 0 not back after a successful trial")
	}
	if h := s.Health(); h[0].Ejections != 2 || h[1].Ejections != 0 {
		t.Fatalf("ejections = %d, %d; want 2 (the first and the failed trial), 0", h[0].Ejections, h[1].Ejections)
	}
}

func TestFiveHundredsCountOnlyWhenAsked(t *testing.T) {
	for _, tt := range []struct {
		query   string
		ejected bool
	}{{"lb=first", false}, {"lb=first&fail_on_5xx=true", true}} {
		t.Run(tt.query, func(t *testing.T) {
			s := newSet(t, 2, tt.query, nil)
			r := httptest.NewRequest("GET", "/", nil)
			a, _ := s.Acquire(r, nil)
			a.Done(r.Context(), nil, 503)
			if got := pick(t, s, r) == 1; got != tt.ejected {
				t.Fatalf("ejected = %v, want %v", got, tt.ejected)
			}
		})
	}
}

func TestClientCancellationIsNotAFailure(t *testing.T) {
	s := newSet(t, 2, "lb=first&breaker=true&breaker_failures=1", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	a, _ := s.Acquire(r, nil)
	a.Done(ctx, context.Canceled, 0)
	if got := pick(t, s, httptest.NewRequest("GET", "/", nil)); got != 0 {
		t.Fatalf("a client cancel ejected or tripped instance 0")
	}
}

func TestBreakerOpensAndHalfOpens(t *testing.T) {
	s := newSet(t, 2, "breaker=true&breaker_failures=3&breaker_timeout=50ms&max_fails=0", nil)
	r := httptest.NewRequest("GET", "/", nil)
	boom := errors.New("reset")
	for range 3 {
		for _, i := range []int{0, 1} {
			a, err := s.claimForTest(i)
			if err != nil {
				t.Fatal(err)
			}
			a.Done(r.Context(), boom, 0)
		}
	}
	_, err := s.Acquire(r, nil)
	var nie *NoInstanceError
	if !errors.As(err, &nie) || nie.Open != 2 {
		t.Fatalf("all breakers open: err = %v", err)
	}
	if !strings.Contains(err.Error(), "2 circuit breaker open") {
		t.Fatalf("error does not say why: %v", err)
	}
	for i, h := range s.Health() {
		if h.BreakerOpens != 1 || h.Unavailable != "circuit breaker open" {
			t.Fatalf("instance %d: breaker opens = %d, unavailable %q; want 1, the breaker named", i, h.BreakerOpens, h.Unavailable)
		}
	}
	// After breaker_timeout, the breakers are half-open: one trial each.
	deadline := time.Now().Add(5 * time.Second)
	var a *Attempt
	for a == nil {
		if time.Now().After(deadline) {
			t.Fatal("breaker never went half-open")
		}
		a, _ = s.Acquire(r, []*Instance{s.insts[1]})
		if a == nil {
			time.Sleep(5 * time.Millisecond) // polling a clock-driven state, no signal exists
		}
	}
	if _, err := s.Acquire(r, []*Instance{s.insts[1]}); err == nil {
		t.Fatal("a half-open breaker let a second request through")
	}
	a.Done(r.Context(), nil, 200)
	if got := pick(t, s, r); got != 0 && got != 1 {
		t.Fatal("unreachable")
	}
	if h := s.Health(); !h[0].Healthy {
		t.Fatalf("instance 0 not healthy after a successful trial: %+v", h[0])
	}
}

func TestActiveHealthMarksDownWithinOneInterval(t *testing.T) {
	var failing atomic.Bool
	probe := func(ctx context.Context, in *Instance) error {
		if in.Index() == 1 && failing.Load() {
			return errors.New("status 500")
		}
		return nil
	}
	s := newSet(t, 3, "health_path=/healthz&health_interval=50ms", probe)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(50*time.Millisecond + time.Second) // one interval, plus slack for -race
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, s.Health())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("first checks", func() bool { return s.Health()[1].Known })
	failing.Store(true)
	waitFor("instance 1 down", func() bool { return !s.Health()[1].Healthy })
	r := httptest.NewRequest("GET", "/", nil)
	for range 30 {
		if pick(t, s, r) == 1 {
			t.Fatal("traffic sent to an instance failing its health check")
		}
	}
	failing.Store(false)
	waitFor("instance 1 back", func() bool { return s.Health()[1].Healthy })
}

func TestNoInstanceWhenAllTried(t *testing.T) {
	s := newSet(t, 2, "", nil)
	_, err := s.Acquire(httptest.NewRequest("GET", "/", nil), s.Instances())
	if err == nil || !strings.Contains(err.Error(), "2 already tried") {
		t.Fatalf("err = %v", err)
	}
}

func TestRetryBudgetCapsRetries(t *testing.T) {
	clk := &fakeClock{}
	clk.advance(time.Hour)
	b := NewBudget(0.2, 3, clk.now)
	for range 100 {
		b.Request()
	}
	allowed := 0
	for range 100 {
		if b.AllowRetry() {
			allowed++
		}
	}
	if allowed != 23 {
		t.Fatalf("allowed %d retries on 100 requests, want 20%% + 3 = 23", allowed)
	}
	clk.advance(11 * time.Second) // the window slid past everything
	allowed = 0
	for range 10 {
		if b.AllowRetry() {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("an idle window allows %d retries, want the minimum 3", allowed)
	}
}

func TestIdempotentAndRetryable(t *testing.T) {
	for _, tt := range []struct {
		method string
		key    bool
		want   bool
	}{{"GET", false, true}, {"HEAD", false, true}, {"PUT", false, true}, {"DELETE", false, true}, {"OPTIONS", false, true},
		{"POST", false, false}, {"PATCH", false, false}, {"POST", true, true}} {
		r := httptest.NewRequest(tt.method, "/", nil)
		if tt.key {
			r.Header.Set("Idempotency-Key", "k")
		}
		if got := Idempotent(r); got != tt.want {
			t.Errorf("Idempotent(%s, key=%v) = %v", tt.method, tt.key, got)
		}
	}
	ctx := context.Background()
	if !Retryable(ctx, io.ErrUnexpectedEOF, true, false) || Retryable(ctx, io.ErrUnexpectedEOF, true, true) {
		t.Error("a connection failure is retryable only before the body was sent")
	}
	if Retryable(ctx, io.ErrUnexpectedEOF, false, false) {
		t.Error("a broken connection may have delivered a POST: not retryable")
	}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	if !Retryable(ctx, dial, false, false) {
		t.Error("a dial error is retryable for any method")
	}
	if Retryable(ctx, context.DeadlineExceeded, true, false) {
		t.Error("a timeout is not retryable")
	}
}

func TestBodyGuardHandsAnUntouchedBodyToTheNextAttempt(t *testing.T) {
	g := NewBodyGuard(io.NopCloser(strings.NewReader("payload")))
	a1 := g.Attempt()
	if a1.Detach() {
		t.Fatal("an unread attempt reported consumption")
	}
	if _, err := a1.Read(make([]byte, 4)); err == nil {
		t.Fatal("a detached attempt could still read")
	}
	a2 := g.Attempt()
	got, _ := io.ReadAll(a2)
	if string(got) != "payload" {
		t.Fatalf("second attempt read %q", got)
	}
	if !a2.Detach() {
		t.Fatal("a read attempt reported no consumption")
	}
}

func TestFailuresInFlightAtAnEjectionCountOneEjection(t *testing.T) {
	s := newSet(t, 2, "lb=first&max_fails=1", nil)
	ctx := context.Background()
	var held []*Attempt
	for range 3 {
		a, err := s.claimForTest(0)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, a)
	}
	for _, a := range held {
		a.Done(ctx, errors.New("connection reset"), 0)
	}
	if got := s.Health()[0].Ejections; got != 1 {
		t.Fatalf("ejections = %d after three concurrent failures, want 1", got)
	}
}

// While no instance may be tried, the 503s it causes are logged at the outage's start and then once
// every 10 s with the number left out (LogLine); the first Acquire that finds an instance ends the
// outage, and the next 503 is logged at once.
func TestAnOutageIsLoggedAtItsStartThenNowAndThen(t *testing.T) {
	clk := &fakeClock{}
	clk.advance(time.Hour)
	s := newSet(t, 2, "lb=first&max_fails=1&fail_timeout=30s", nil)
	s.now = clk.now
	r := httptest.NewRequest("GET", "/", nil)
	failBoth := func() {
		t.Helper()
		for range 2 {
			a, err := s.Acquire(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			a.Done(r.Context(), errors.New("connection refused"), 0) // ejected for 30 s
		}
	}
	failBoth()
	line := func() (bool, int) {
		t.Helper()
		_, err := s.Acquire(r, nil)
		var nie *NoInstanceError
		if !errors.As(err, &nie) {
			t.Fatalf("Acquire: %v; want a NoInstanceError", err)
		}
		return nie.LogLine()
	}
	if log, n := line(); !log || n != 0 {
		t.Fatalf("the outage's first 503: logged %v (%d left out); want logged", log, n)
	}
	for i := 0; i < 100; i++ {
		if log, _ := line(); log {
			t.Fatalf("503 %d within 10 s of the last line was logged", i+2)
		}
	}
	clk.advance(10 * time.Second)
	if log, n := line(); !log || n != 100 {
		t.Fatalf("10 s on: logged %v with %d left out; want logged with 100", log, n)
	}
	for range 3 {
		line()
	}
	var logs bytes.Buffer
	s.logger = slog.New(slog.NewTextHandler(&logs, nil))
	clk.advance(20 * time.Second) // the ejections end: the instances are tried again, and fail again
	failBoth()
	// The outage's end says so, with the 503s not logged since its last line.
	if !strings.Contains(logs.String(), `msg="an instance is available again"`) || !strings.Contains(logs.String(), "not_logged_since=3") {
		t.Fatalf("the end of the outage:\n%s", logs.String())
	}
	if log, n := line(); !log || n != 0 {
		t.Fatalf("a new outage's first 503: logged %v (%d left out); want logged", log, n)
	}
}

// An instance whose process was restarted is back in service when Revive says so, its ejection ended
// and its failures forgotten, long before fail_timeout.
func TestARevivedInstanceIsBackAtOnce(t *testing.T) {
	clk := &fakeClock{}
	clk.advance(time.Hour)
	s := newSet(t, 2, "lb=first&max_fails=1&fail_timeout=1h", nil)
	s.now = clk.now
	r := httptest.NewRequest("GET", "/", nil)
	a, err := s.Acquire(r, nil)
	if err != nil || a.Instance.Index() != 0 {
		t.Fatalf("want instance 0, got %v %v", a, err)
	}
	a.Done(r.Context(), errors.New("connection refused"), 0)
	if got := pick(t, s, r); got != 1 {
		t.Fatalf("instance 0 not ejected (picked %d)", got)
	}
	s.Revive(0)
	if got := pick(t, s, r); got != 0 {
		t.Fatalf("revived, instance 0 is not picked (picked %d)", got)
	}
	if h := s.Health()[0]; !h.Healthy || h.Unavailable != "" || h.ConsecutiveFailures != 0 {
		t.Fatalf("health of the revived instance = %+v", h)
	}
}

// Attempts in flight when an instance fails fail together: the ejection they extend is logged once,
// when it starts, not once per failure.
func TestAnEjectionIsLoggedOnce(t *testing.T) {
	s := newSet(t, 2, "lb=first&max_fails=1", nil)
	var logs bytes.Buffer
	s.logger = slog.New(slog.NewTextHandler(&logs, nil))
	r := httptest.NewRequest("GET", "/", nil)
	var inFlight []*Attempt
	for range 8 {
		a, err := s.Acquire(r, nil)
		if err != nil || a.Instance.Index() != 0 {
			t.Fatalf("want instance 0, got %v %v", a, err)
		}
		inFlight = append(inFlight, a)
	}
	for _, a := range inFlight {
		a.Done(r.Context(), errors.New("connection reset by peer"), 0)
	}
	if n := strings.Count(logs.String(), "instance ejected"); n != 1 {
		t.Fatalf("%d lines say the instance was ejected; want 1:\n%s", n, logs.String())
	}
	if h := s.Health()[0]; h.Ejections != 1 || h.ConsecutiveFailures != 8 {
		t.Fatalf("health %+v", h)
	}
}

// Keys names every option ParseConfig reads, and only those: plan compares apps' balancing rules by
// them.
func TestKeysAreWhatParseConfigReads(t *testing.T) {
	o, err := adapters.ParseOptions("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(o); err != nil {
		t.Fatal(err)
	}
	asked, keys := o.Asked(), append([]string(nil), Keys...)
	slices.Sort(asked)
	slices.Sort(keys)
	if !slices.Equal(asked, keys) {
		t.Fatalf("ParseConfig reads %q; Keys is %q", asked, keys)
	}
}
