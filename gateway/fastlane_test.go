//go:build linux

package gateway

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/metrics"
)

// rawBackend is an HTTP/1.1 app on a real socket that records each request's raw bytes (head and body)
// and answers with the raw bytes its path names (answers), so that what the gateway sends upstream and
// relays back can be compared byte for byte. An answer with a NUL is sent in two pieces, without it.
// One of "STALL" never comes.
type rawBackend struct {
	ln      net.Listener
	answers map[string]string
	quit    chan struct{}
	mu      sync.Mutex
	got     []string
}

func startRawBackend(t *testing.T, answers map[string]string) *rawBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawBackend{ln: ln, answers: answers, quit: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); close(b.quit); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				b.serve(c)
			}()
		}
	}()
	return b
}

func (b *rawBackend) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		var head bytes.Buffer
		for {
			line, err := br.ReadString('\n')
			head.WriteString(line)
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head.Bytes())))
		if err != nil {
			return
		}
		body := make([]byte, max(req.ContentLength, 0))
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		b.mu.Lock()
		b.got = append(b.got, sortedFields(head.String())+string(body))
		b.mu.Unlock()
		answer, ok := b.answers[req.URL.Path]
		if !ok {
			answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
		}
		if strings.HasPrefix(answer, "STALL") {
			<-b.quit // never answers: the gateway's timeout ends the exchange
			return
		}
		if head, rest, split := strings.Cut(answer, "\x00"); split {
			// An answer in two pieces: the second well after the first, so that the gateway reads them
			// apart (nothing tells the app when the first was read; the answer is the same either way).
			if _, err := io.WriteString(c, head); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
			answer = head + rest
			if _, err := io.WriteString(c, rest); err != nil || strings.Contains(answer, "Connection: close") {
				return
			}
			continue
		}
		if _, err := io.WriteString(c, answer); err != nil || strings.Contains(answer, "Connection: close") {
			return
		}
	}
}

// sortedFields returns a head with its field lines sorted: the direct path writes the fields in map
// order, so only their set is the same from one request to the next.
func sortedFields(head string) string {
	lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
	slices.Sort(lines[1:])
	return strings.Join(lines, "\r\n") + "\r\n\r\n"
}

func (b *rawBackend) take() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	got := b.got
	b.got = nil
	return got
}

// laneAnswers are the app's answers by path. Those of unknown length carry a Content-Type: for them the
// direct path flushes the head from a timer, so whether the server sniffs a type from the first body bytes
// depends on which comes first, on either path.
var laneAnswers = map[string]string{
	"/cl":       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-App: a\r\n\r\nhello",
	"/nocl":     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
	"/chunked":  "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
	"/trailers": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Sum: 7\r\n\r\n",
	"/close":    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil the end",
	"/204":      "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
	"/304":      "HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n\r\n",
	"/early":    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	"/hop":      "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nContent-Length: 1\r\n\r\nx",
	"/big":      "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("b", 5000),
	"/bigchunk": "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n1388\r\n" + strings.Repeat("c", 5000) + "\r\n0\r\n\r\n",
	"/stall":    "STALL",
	"/bad":      "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
	"/short":    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nhello",
	"/own-id":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nx-request-id: app\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nDate: Mon, 07 Dec 2026 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
	"/empty":    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"/notype":   "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n<b>x",
	"/unknown":  "HTTP/1.1 299 Whatever\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\nu",
	"/pragma":   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nPragma: no-cache\r\nContent-Length: 1\r\n\r\np",
	"/10":       "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
}

// laneCase is one exchange: the raw request (sent whole), the method for reading the answer, and a
// follow-up request sent on the same connection afterwards (showing whether it was kept).
type laneCase struct {
	name, req, method string
}

var laneCases = []laneCase{
	{"a GET answered with a length", "GET /cl?x=1&y=%2F HTTP/1.1\r\nHost: Example.com:80\r\nUser-Agent: t\r\nAccept: */*\r\nX-Request-Id: lane1\r\n\r\n", "GET"},
	{"a GET answered chunked", "GET /chunked HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane2\r\n\r\n", "GET"},
	{"trailers", "GET /trailers HTTP/1.1\r\nHost: a\r\nTe: trailers\r\nX-Request-Id: lane3\r\n\r\n", "GET"},
	{"a close-delimited answer", "GET /close HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane4\r\n\r\n", "GET"},
	{"HEAD", "HEAD /cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane5\r\n\r\n", "HEAD"},
	{"204", "GET /204 HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane6\r\n\r\n", "GET"},
	{"304", "GET /304 HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\nX-Request-Id: lane7\r\n\r\n", "GET"},
	{"1xx then the answer", "GET /early HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane8\r\n\r\n", "GET"},
	{"hop-by-hop fields of the answer", "GET /hop HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane9\r\n\r\n", "GET"},
	{"a POST with a body", "POST /cl HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nX-Request-Id: lane10\r\n\r\nhello world", "POST"},
	{"a POST whose body the app does not read", "POST /nocl HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX-Request-Id: lane11\r\n\r\nabc", "POST"},
	{"HTTP/1.0 keep-alive", "GET /cl HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nX-Request-Id: lane12\r\n\r\n", "GET"},
	{"HTTP/1.0 keep-alive, chunked upstream", "GET /chunked HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nX-Request-Id: lane13\r\n\r\n", "GET"},
	{"HTTP/1.0", "GET /cl HTTP/1.0\r\nHost: a\r\nX-Request-Id: lane14\r\n\r\n", "GET"},
	{"HTTP/1.0 with a body", "POST /cl HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nContent-Length: 2\r\nX-Request-Id: lane15\r\n\r\nhi", "POST"},
	{"Connection: close", "GET /cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Request-Id: lane16\r\n\r\n", "GET"},
	{"a body past the 2 KiB buffer", "GET /big HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane17\r\n\r\n", "GET"},
	{"a chunk past the buffers", "GET /bigchunk HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane18\r\n\r\n", "GET"},
	{"no route answer (the app's 404)", "GET /nothing HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane19\r\n\r\n", "GET"},
	{"the upstream times out (504)", "GET /stall HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane20\r\n\r\n", "GET"},
	{"a broken upstream answer (502)", "GET /bad HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane21\r\n\r\n", "GET"},
	{"forwarding headers from an untrusted client", "GET /cl HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Host: evil\r\nForwarded: for=1.2.3.4\r\nX-Request-Id: lane22\r\n\r\n", "GET"},
	{"Pragma: no-cache", "GET /cl HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nX-Request-Id: lane23\r\n\r\n", "GET"},
	{"an answer cut mid-body", "GET /short HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane33\r\n\r\n", "GET"},
	{"the app's own request id, cookies and date", "GET /own-id HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane34\r\n\r\n", "GET"},
	{"an empty answer without a type", "GET /empty HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane35\r\n\r\n", "GET"},
	{"an answer without a type (sniffed)", "GET /notype HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane36\r\n\r\n", "GET"},
	{"a status without a text", "GET /unknown HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane37\r\n\r\n", "GET"},
	{"an answer with Pragma", "GET /pragma HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane38\r\n\r\n", "GET"},
	{"an HTTP/1.0 answer (the app closes)", "GET /10 HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane39\r\n\r\n", "GET"},
	{"lower-case, repeated and empty fields", "GET /cl HTTP/1.1\r\nhost: a\r\naccept: a\r\nACCEPT: b\r\nuser-agent: u\r\nUser-Agent: v\r\nx-empty: \r\nx-request-id: lane40\r\n\r\n", "GET"},
	{"an empty User-Agent", "GET /cl HTTP/1.1\r\nHost: a\r\nUser-Agent: \r\nX-Request-Id: lane41\r\n\r\n", "GET"},
	{"a traceparent", "GET /cl HTTP/1.1\r\nHost: a\r\nTraceparent: 00-0123456789abcdef0123456789abcdef-0123456789abcdef-01\r\nX-Request-Id: lane42\r\n\r\n", "GET"},
	{"a POST with an Idempotency-Key", "POST /cl HTTP/1.1\r\nHost: a\r\nIdempotency-Key: k1\r\nContent-Length: 1\r\nX-Request-Id: lane43\r\n\r\nx", "POST"},
	{"a DELETE with Content-Length: 0", "DELETE /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nX-Request-Id: lane44\r\n\r\n", "DELETE"},
	{"a POST without a body", "POST /cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane45\r\n\r\n", "POST"},
	{"a query with escapes", "GET /cl?q=a%20b&r=%2f HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane46\r\n\r\n", "GET"},
	{"a bare question mark", "GET /cl? HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane47\r\n\r\n", "GET"},
	{"a POST of 3 KiB (past the connection's small buffer)", "POST /cl HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 3072\r\nX-Request-Id: lane48\r\n\r\n" + strings.Repeat("p", 3072), "POST"},
	{"a head of 2 KiB", "GET /cl HTTP/1.1\r\nHost: a\r\nCookie: " + strings.Repeat("c", 2048) + "\r\nX-Request-Id: lane49\r\n\r\n", "GET"},
	{"HEAD of an answer that closes, with body bytes after its head", "HEAD /short HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane50\r\n\r\n", "HEAD"},
	{"handed off: chunked request", "POST /cl HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Request-Id: lane24\r\n\r\n3\r\nabc\r\n0\r\n\r\n", "POST"},
	{"handed off: a dot segment", "GET /x/../cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane25\r\n\r\n", "GET"},
	{"handed off: no Host", "GET /cl HTTP/1.1\r\nX-Request-Id: lane26\r\n\r\n", "GET"},
	{"handed off: two Host fields", "GET /cl HTTP/1.1\r\nHost: a\r\nHost: b\r\nX-Request-Id: lane27\r\n\r\n", "GET"},
	{"handed off: a bare LF", "GET /cl HTTP/1.1\nHost: a\nX-Request-Id: lane28\n\n", "GET"},
	{"handed off: Expect", "POST /cl HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nX-Request-Id: lane29\r\n\r\nhi", "POST"},
	{"handed off: a method chi does not know", "PROPFIND /cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane30\r\n\r\n", "PROPFIND"},
	{"two pipelined requests", "GET /cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane31\r\n\r\nGET /chunked HTTP/1.1\r\nHost: a\r\nX-Request-Id: lane32\r\n\r\n", "GET"},
}

// laneExchange is what one case produced: the bytes the client read and the requests the app received.
type laneExchange struct{ client, upstream string }

// runLaneCases serves every case of laneCases through NewFront (lane on or off) in front of one raw
// backend answering laneAnswers, and returns what each produced, with the Date values and the upstream's
// source ports blanked.
func runLaneCases(t *testing.T, lane bool, extra ...string) (map[string]laneExchange, string, string, *Front) {
	t.Helper()
	return runCases(t, laneAnswers, laneCases, lane, extra...)
}

// runCases is runLaneCases with the given answers and cases; in the extra settings' values, "(app)"
// stands for the backend's address.
func runCases(t *testing.T, answers map[string]string, cases []laneCase, lane bool, extra ...string) (map[string]laneExchange, string, string, *Front) {
	t.Helper()
	return runCasesWith(t, answers, cases, lane, nil, extra...)
}

// runCasesWith is runCases with withOpts (when not nil) changing the gateway's Options before the build.
func runCasesWith(t *testing.T, answers map[string]string, cases []laneCase, lane bool, withOpts func(*Options), extra ...string) (map[string]laneExchange, string, string, *Front) {
	t.Helper()
	b := startRawBackend(t, answers)
	env := map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String() + "?timeout=300ms",
		"GATEWAY_FAST_LANE": strconv.FormatBool(lane)}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = strings.ReplaceAll(extra[i+1], "(app)", b.ln.Addr().String())
	}
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Registry: builtin.Registry(logger, nil), Logger: logger, Observe: m.Middleware, ObserveMetrics: m}
	if withOpts != nil {
		withOpts(&opts)
	}
	g, err := Build(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	reg.MustRegister(g.Collectors...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFront(cfg, g.Handler, ln, logger, FrontOptions{})
	if (f.Lane != nil) != lane {
		t.Fatalf("GATEWAY_FAST_LANE=%v: lane %v", lane, f.Lane != nil)
	}
	done := make(chan struct{})
	go func() { defer close(done); f.Serve() }()
	t.Cleanup(func() { f.Server.Close(); <-done })
	if strings.Contains(env["GATEWAY_PRIMARY"], "health_") {
		appHealth(t, g, func(h adapters.InstanceHealth) bool { return h.Known }) // the first check is in
	}
	out := map[string]laneExchange{}
	for _, c := range cases {
		client := exchange(t, ln.Addr().String(), c)
		out[c.name] = laneExchange{client: dateRE.ReplaceAllString(client, "Date: (date)"), upstream: strings.ReplaceAll(strings.Join(b.take(), "\n---\n"), b.ln.Addr().String(), "(app)")}
	}
	// The apps' health as their reports give it, once no exchange is in flight (an exchange may end just
	// after its client read the answer).
	health := appHealth(t, g, func(h adapters.InstanceHealth) bool { return h.InFlight == 0 })
	var ledger []string // the migration ledger's rows, sorted
	for _, row := range g.Migration.Report().Ledger {
		ledger = append(ledger, fmt.Sprintf("ledger %s %s %s %d %v\n", row.Method, row.Route, row.Path, row.Total, row.Answers))
	}
	slices.Sort(ledger)
	health += strings.Join(ledger, "")
	f.Server.Close()
	<-done
	g.Close()
	app := b.ln.Addr().String()
	return out, strings.ReplaceAll(logVariesRE.ReplaceAllString(logs.String(), "$1=(varies)"), app, "(app)"), strings.ReplaceAll(counts(t, reg)+health, app, "(app)"), f
}

// onLaneSettings runs cases (answered from answers, with the settings env) with the lane on, its event
// loops on ("0") and off ("-1"), each a subtest held to off, the same cases' run with the lane off
// (sameAsLaneOff); check then looks at the run's front (what the lane took).
func onLaneSettings(t *testing.T, answers map[string]string, cases []laneCase, env []string, off laneRun, check func(t *testing.T, loops string, f *Front)) {
	t.Helper()
	for _, loops := range []string{"0", "-1"} {
		t.Run("GATEWAY_FAST_LANE_LOOPS="+loops, func(t *testing.T) {
			on, onLog, onCounts, f := runCases(t, answers, cases, true, append(env[:len(env):len(env)], "GATEWAY_FAST_LANE_LOOPS", loops)...)
			sameAsLaneOff(t, cases, off, laneRun{on, onLog, onCounts})
			check(t, loops, f)
		})
	}
}

// laneRun is what one run of cases produced (runCases): by case, and the log and counts.
type laneRun struct {
	out         map[string]laneExchange
	log, counts string
}

// sameAsLaneOff fails t wherever on, a run with the lane, differs from off, the same cases' run with
// net/http serving every request: the metrics (and health reports), the log, each case's bytes.
func sameAsLaneOff(t *testing.T, cases []laneCase, off, on laneRun) {
	t.Helper()
	if off.counts != on.counts {
		t.Errorf("the metrics or health reports differ:\n lane off:\n%s\n lane on:\n%s", off.counts, on.counts)
	}
	if off.log != on.log {
		t.Errorf("the logs differ (access lines, failures):\n lane off:\n%s\n lane on:\n%s", off.log, on.log)
	}
	for _, c := range cases {
		if a, b := off.out[c.name], on.out[c.name]; a != b {
			t.Errorf("%s:\n lane off, client:\n%s\n upstream:\n%s\n lane on, client:\n%s\n upstream:\n%s", c.name,
				a.client, a.upstream, b.client, b.upstream)
		}
	}
}

// appHealth waits (10 s at most) until every instance of g's apps reported by Health satisfies cond, and
// returns the reports (their check times left out).
func appHealth(t *testing.T, g *Gateway, cond func(adapters.InstanceHealth) bool) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		var b strings.Builder
		all := true
		for _, a := range g.Apps {
			if hr, ok := a.Handler.(adapters.HealthReporter); ok {
				for _, h := range hr.Health() {
					all = all && cond(h)
					h.LastChecked = time.Time{}
					fmt.Fprintf(&b, "health of %s: %+v\n", a.Name, h)
				}
			}
		}
		if all {
			return b.String()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the apps' health did not reach the state the test waits for:\n%s", b.String())
		}
	}
}

// counts prints the registry's counters and the sample counts of its histograms (the request metrics
// and the migration ledger's numbers), leaving out what is timed.
func counts(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			switch {
			case m.GetCounter() != nil:
				fmt.Fprintf(&b, "%s%v %v\n", mf.GetName(), labels, m.GetCounter().GetValue())
			case m.GetHistogram() != nil:
				fmt.Fprintf(&b, "%s%v count %v\n", mf.GetName(), labels, m.GetHistogram().GetSampleCount())
			case mf.GetName() == "switchyard_requests_in_flight": // back to 0 once every request is done
				fmt.Fprintf(&b, "%s%v %v\n", mf.GetName(), labels, m.GetGauge().GetValue())
			}
		}
	}
	return b.String()
}

// logVariesRE matches what differs between two runs of the same requests in the log: times, durations,
// the client's port and the app's listening address.
var logVariesRE = regexp.MustCompile(`\b(time|duration_ms|app_duration_ms|client|app|upstream|dial)=("[^"]*"|\S+)`)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

var dateRE = regexp.MustCompile(`Date: [^\r]*`)

// exchange sends c's request on a new connection, reads the answers it gets (one per request in it),
// then sends a follow-up GET and reads its answer or the connection's end: the client's raw bytes.
func exchange(t *testing.T, addr string, c laneCase) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	var raw, notes bytes.Buffer
	br := bufio.NewReader(io.TeeReader(conn, &raw))
	if _, err := io.WriteString(conn, c.req); err != nil {
		t.Fatal(err)
	}
	read := func(method string) bool {
		res, err := http.ReadResponse(br, &http.Request{Method: method})
		for err == nil && res.StatusCode >= 100 && res.StatusCode <= 199 {
			res, err = http.ReadResponse(br, &http.Request{Method: method}) // the final answer follows
		}
		if err != nil {
			fmt.Fprintf(&notes, "\n[read: %v]", err)
			return false
		}
		_, err = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil {
			fmt.Fprintf(&notes, "\n[body: %v]", err)
			return false
		}
		return !res.Close
	}
	kept := true
	for range strings.Count(c.req, " HTTP/1.") {
		kept = read(c.method) && kept
	}
	if kept {
		io.WriteString(conn, "GET /cl HTTP/1.1\r\nHost: a\r\nX-Request-Id: next\r\n\r\n")
		read("GET")
	}
	n := raw.Len() - br.Buffered() // what the reads consumed: the answers, not bytes read ahead
	return raw.String()[:n] + notes.String() + fmt.Sprintf("\n[kept: %v]", kept)
}

// TestFastLaneAnswersAsNetHTTP is the lane's differential test: for the same requests, the bytes the
// client gets and the bytes the app gets are the same with GATEWAY_FAST_LANE on as off (net/http serving
// every request), for every answer shape the direct path relays and for the requests the lane hands off;
// and the log (access lines with status, bytes, route, app and request id; failure lines), the request
// metrics and the migration ledger's counts are the same.
func TestFastLaneAnswersAsNetHTTP(t *testing.T) {
	off, offLog, offCounts, _ := runLaneCases(t, false)
	if !strings.Contains(offCounts, "switchyard_requests_total") {
		t.Fatalf("no request counts:\n%s", offCounts)
	}
	if !strings.Contains(offLog, "request_id=lane1") || !strings.Contains(offLog, "status=504") {
		t.Fatalf("the log has no access lines:\n%s", offLog)
	}
	// The lane with its event loops (the default), and with every connection on a goroutine.
	for _, loops := range []string{"0", "-1"} {
		t.Run("GATEWAY_FAST_LANE_LOOPS="+loops, func(t *testing.T) {
			on, onLog, onCounts, f := runLaneCases(t, true, "GATEWAY_FAST_LANE_LOOPS", loops)
			sameAsLaneOff(t, laneCases, laneRun{off, offLog, offCounts}, laneRun{on, onLog, onCounts})
			if f.Lane.Expressed() == 0 || f.Lane.Expressed() == f.Lane.Served() {
				t.Errorf("the lane served %d requests on its express path of %d: the cases must exercise it and the handler chain", f.Lane.Expressed(), f.Lane.Served())
			}
			if looped := f.Lane.Looped(); (loops == "0") != (looped > 0) || looped == f.Lane.Expressed() && loops == "0" {
				t.Errorf("the event loops finished %d of the %d express exchanges: with loops they must finish some and hand some on, without none", looped, f.Lane.Expressed())
			}
			if f.Lane.Served() == 0 || f.Lane.HandedOff() == 0 {
				t.Errorf("the lane served %d requests and handed %d connections: the cases must exercise both", f.Lane.Served(), f.Lane.HandedOff())
			}
			// The front's series say so too.
			reg := prometheus.NewRegistry()
			reg.MustRegister(f.Collector())
			got := counts(t, reg)
			for _, want := range []string{
				fmt.Sprintf("switchyard_fast_lane_requests_total[listener=http] %d\n", f.Lane.Served()),
				fmt.Sprintf("switchyard_fast_lane_handoffs_total[listener=http] %d\n", f.Lane.HandedOff()),
			} {
				if !strings.Contains(got, want) {
					t.Errorf("the front's metrics lack %q:\n%s", want, got)
				}
			}
		})
	}
}

func TestTheFastLaneSeriesSayWhetherItIsOn(t *testing.T) {
	live := NewLive(nil)
	plain := http.NotFoundHandler()
	for _, tt := range []struct {
		setting bool
		h       http.Handler
		on      bool
	}{{false, live, false}, {true, live, true}, {true, plain, false}} {
		on := tt.on
		cfg, err := config.Load(map[string]string{"GATEWAY_PRIMARY": "http://127.0.0.1:9", "GATEWAY_FAST_LANE": strconv.FormatBool(tt.setting)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f := NewFront(cfg, tt.h, ln, slog.New(slog.DiscardHandler), FrontOptions{})
		reg := prometheus.NewRegistry()
		reg.MustRegister(f.Collector())
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		value := -1.0
		for _, mf := range mfs {
			if mf.GetName() == "switchyard_fast_lane_on" {
				value = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if want := map[bool]float64{false: 0, true: 1}[on]; value != want {
			t.Errorf("GATEWAY_FAST_LANE=%v, handler %T: switchyard_fast_lane_on = %v, want %v", tt.setting, tt.h, value, want)
		}
		f.Listener().Close()
	}
}

// TestAClientThatLeavesEndsTheAppsExchange: a client that closes its connection while the app has not
// answered yet ends the exchange with the app (the app sees its connection closed), with the lane off
// (net/http cancels the request's context) and on (the express path asks whether the client is still
// there every h1.WatchEvery while it waits).
func TestAClientThatLeavesEndsTheAppsExchange(t *testing.T) {
	for _, lane := range []bool{false, true} {
		t.Run(fmt.Sprintf("lane=%v", lane), func(t *testing.T) {
			app, asked, ended := startHoldingApp(t, "")
			env := map[string]string{"GATEWAY_PRIMARY": "http://" + app + "?timeout=60s",
				"GATEWAY_FAST_LANE": strconv.FormatBool(lane)}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			addr, f := startFront(t, env, logger)

			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
			select {
			case <-asked:
			case <-time.After(10 * time.Second):
				t.Fatal("the app never got the request")
			}
			c.Close()
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the app's exchange went on 10 s after its client left")
			}
			if lane && f.Lane.Expressed() != 0 {
				t.Errorf("the express path counted %d served answers for a request nobody answered", f.Lane.Expressed())
			}
		})
	}
}

// TestABodyThatStallsGetsNetHTTPsAnswerFromTheLane: a request whose body stops coming is answered as the
// net/http path answers it (the client deadlines' 408 after GATEWAY_BODY_TIMEOUT) with the lane on,
// where the express path waits for the whole body before sending anything and hands a body that does not
// come to the handler chain, which reads on from what was buffered.
func TestABodyThatStallsGetsNetHTTPsAnswerFromTheLane(t *testing.T) {
	b := startRawBackend(t, laneAnswers)
	for _, lane := range []bool{false, true} {
		t.Run(fmt.Sprintf("lane=%v", lane), func(t *testing.T) {
			env := map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String(),
				"GATEWAY_FAST_LANE": strconv.FormatBool(lane), "GATEWAY_BODY_TIMEOUT": "300ms"}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			addr, _ := startFront(t, env, logger)
			c := dialFront(t, addr)
			io.WriteString(c, "POST /cl HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nabc")
			res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "POST"})
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestTimeout || !res.Close {
				t.Errorf("a stalled body got %d (close %v), want 408 and the connection closed", res.StatusCode, res.Close)
			}
		})
	}
}

// TestTheExpressPathJoinsTheAppsBasePathAsNetHTTPs: an app URL with a base path, and the client's Host
// kept (host_header=client), give the app the same request line and Host on the express path as on the
// net/http path.
func TestTheExpressPathJoinsTheAppsBasePathAsNetHTTPs(t *testing.T) {
	b := startRawBackend(t, map[string]string{"/base/cl": laneAnswers["/cl"], "/base/": laneAnswers["/cl"]})
	var got [2]string
	for i, lane := range []bool{false, true} {
		env := map[string]string{"GATEWAY_PRIMARY": "http://" + b.ln.Addr().String() + "/base/?host_header=client",
			"GATEWAY_FAST_LANE": strconv.FormatBool(lane)}
		addr, f := startFront(t, env, slog.New(slog.NewTextHandler(io.Discard, nil)))
		client := exchange(t, addr, laneCase{"base", "GET /cl?a=1 HTTP/1.1\r\nHost: www.example.com:8080\r\nX-Request-Id: base1\r\n\r\n", "GET"})
		got[i] = dateRE.ReplaceAllString(client, "Date: (date)") + "\n" + strings.Join(b.take(), "\n---\n")
		if lane && f.Lane.Expressed() == 0 {
			t.Error("the express path served nothing")
		}
	}
	if got[0] != got[1] {
		t.Errorf("lane off:\n%s\nlane on:\n%s", got[0], got[1])
	}
	if !strings.Contains(got[1], "GET /base/cl?a=1 HTTP/1.1") || !strings.Contains(got[1], "Host: www.example.com:8080") {
		t.Errorf("the app did not get the joined path and the client's Host:\n%s", got[1])
	}
}

// dialFront opens a client connection to addr with a 10 s deadline on everything it does, closed when
// the test ends.
func dialFront(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// startFront builds a gateway from the settings env, logging to logger, and serves it through NewFront on
// a loopback port; the front and the gateway are closed when the test ends, in that order.
func startFront(t *testing.T, env map[string]string, logger *slog.Logger) (addr string, f *Front) {
	t.Helper()
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f = NewFront(cfg, g.Handler, ln, logger, FrontOptions{})
	done := make(chan struct{})
	go func() { defer close(done); f.Serve() }()
	t.Cleanup(func() { f.Server.Close(); <-done })
	return ln.Addr().String(), f
}
