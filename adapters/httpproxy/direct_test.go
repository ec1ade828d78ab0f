package httpproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/switchyard/switchyard/internal/testpeer"
	"github.com/switchyard/switchyard/reqinfo"
)

// recorded is what the app received: the request line and header lines (sorted: both paths write
// fields in map order) and the body.
type recorded struct {
	Head []string
	Body string
}

// recordingAppFunc is a raw loopback app: it records each request it reads and answers it with
// answer(N) to a path /rN.
func recordingAppFunc(t testing.TB, answer func(int) string) (string, <-chan recorded) {
	t.Helper()
	got := make(chan recorded, 4)
	return "http://" + testpeer.ServeTCP(t, recordingConn(got, answer)), got
}

// recordingApps is a recording app (answers[N] to /rN) listening on two addresses: an app of two
// instances, as one.
func recordingApps(t testing.TB, answers []string) (a, b string, got <-chan recorded) {
	t.Helper()
	ch := make(chan recorded, 4)
	serve := recordingConn(ch, func(i int) string { return answers[i] })
	return "http://" + testpeer.ServeTCP(t, serve), "http://" + testpeer.ServeTCP(t, serve), ch
}

// recordingConn serves one connection of a recording app, sending what it records to got.
func recordingConn(got chan<- recorded, answer func(int) string) func(net.Conn) {
	return func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			var rec recorded
			n, chunked := 0, false
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				line = strings.TrimRight(line, "\r\n")
				if line == "" {
					break
				}
				if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
					n, _ = strconv.Atoi(strings.TrimSpace(v))
				} else if ok && strings.EqualFold(k, "Transfer-Encoding") {
					chunked = true
				}
				rec.Head = append(rec.Head, line)
			}
			if len(rec.Head) == 0 {
				return
			}
			var body []byte
			var err error
			if chunked {
				if body, err = io.ReadAll(httputil.NewChunkedReader(br)); err != nil {
					return
				}
				if _, err := br.ReadString('\n'); err != nil { // the empty trailer section
					return
				}
			} else {
				body = make([]byte, n)
				if _, err := io.ReadFull(br, body); err != nil {
					return
				}
			}
			rec.Body = string(body)
			slices.Sort(rec.Head[1:])
			got <- rec
			i := 0
			if m := answerIndex.FindStringSubmatch(rec.Head[0]); m != nil {
				i, _ = strconv.Atoi(m[1])
			}
			a := answer(i)
			if _, err := io.WriteString(c, a); err != nil {
				return
			}
			if !strings.Contains(a, "Content-Length") && !strings.Contains(a, "chunked") && !strings.HasPrefix(rec.Head[0], "HEAD") && !strings.Contains(a, " 204 ") {
				return // a body delimited by the close
			}
		}
	}
}

var answerIndex = regexp.MustCompile(`/r([0-9]+)`)

// seen is what the client received: the raw heads (1xx and final) without the Date line, the Trailer
// field's names sorted (both paths join them in map order), the body and the trailers.
type seen struct {
	Heads    []string
	Body     string
	BodyErr  string
	Trailers http.Header
}

func rawExchange(t *testing.T, addr, req string) seen {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	var s seen
	for {
		var head []string
		var raw strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				s.BodyErr = "head: " + err.Error()
				return s
			}
			raw.WriteString(line)
			line = strings.TrimRight(line, "\r\n")
			if line == "" {
				break
			}
			switch k, v, _ := strings.Cut(line, ":"); k {
			case "Date":
				continue
			case "Trailer":
				names := strings.Split(strings.TrimSpace(v), ", ")
				slices.Sort(names)
				line = k + ": " + strings.Join(names, ", ")
			}
			head = append(head, line)
		}
		s.Heads = append(s.Heads, strings.Join(head, "\n"))
		code := 0
		if f := strings.Fields(head[0]); len(f) > 1 {
			code, _ = strconv.Atoi(f[1])
		}
		if code >= 200 {
			method := strings.Fields(req)[0]
			resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(raw.String()), br)), &http.Request{Method: method})
			if err != nil {
				s.BodyErr = err.Error()
				return s
			}
			b, err := io.ReadAll(resp.Body)
			s.Body = string(b)
			if err != nil {
				s.BodyErr = err.Error()
			}
			s.Trailers = resp.Trailer
			return s
		}
	}
}

func TestDirectPathMatchesReverseProxy(t *testing.T) {
	// Chunked answers carry a Content-Type: without one, ReverseProxy's head flush (from a timer) races
	// with its first body write, and only the latter lets the server sniff one (both paths share the race).
	answers := []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nConnection: x-other\r\nX-Secret: s\r\nX-Other: o\r\nKeep-Alive: timeout=5\r\nProxy-Connection: x\r\nUpgrade: h2c\r\nTe: trailers\r\nProxy-Authenticate: Basic\r\nX-Kept: k\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Sum, X-Other\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\n, w\r\n0\r\nX-Sum: abc\r\nX-Other: o\r\nX-Late: unannounced\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Sum\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </b.js>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nLink: </a.css>; rel=preload\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\r\n7\r\ndata: 2\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nuntil the close",
		"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found",
		"HTTP/1.1 200 OK\r\nContent-Type: TEXT/Event-Stream\r\nContent-Length: 8\r\n\r\ndata: x\n",
		"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold",
		"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n<html></html>",
	}
	base := "Host: app.example\r\nUser-Agent: test-client\r\n"
	var requests []struct{ name, raw string }
	add := func(name, raw string) { requests = append(requests, struct{ name, raw string }{name, raw}) }
	add("a plain GET", "GET /r0 HTTP/1.1\r\n"+base+"\r\n")
	add("Connection naming X-Forwarded-For", "GET /r0 HTTP/1.1\r\n"+base+"Connection: X-Forwarded-For\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n")
	add("Connection naming X-Forwarded-Host and Proto", "GET /r0 HTTP/1.1\r\n"+base+"Connection: x-forwarded-host, X-FORWARDED-PROTO\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\n\r\n")
	add("Te with trailers and Trailer", "GET /r0 HTTP/1.1\r\n"+base+"Te: gzip, Trailers\r\nTrailer: X-Sum\r\n\r\n")
	add("Te without trailers", "GET /r0 HTTP/1.1\r\n"+base+"Te: gzip\r\n\r\n")
	add("Proxy-Connection, Keep-Alive and Proxy-Authorization", "GET /r0 HTTP/1.1\r\n"+base+"Proxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eDp5\r\n\r\n")
	add("Upgrade without Connection", "GET /r0 HTTP/1.1\r\n"+base+"Upgrade: websocket\r\n\r\n")
	add("Connection upgrade without Upgrade", "GET /r0 HTTP/1.1\r\n"+base+"Connection: Upgrade\r\n\r\n")
	add("several Connection fields and values", "GET /r0 HTTP/1.1\r\n"+base+"Connection: X-A, x-b\r\nConnection: keep-alive,  X-C ,\r\nX-A: a\r\nX-B: b\r\nX-C: c\r\nX-D: d\r\n\r\n")
	add("Connection naming User-Agent", "GET /r0 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: ua\r\nConnection: User-Agent\r\n\r\n")
	add("no User-Agent", "GET /r0 HTTP/1.1\r\nHost: app.example\r\n\r\n")
	add("an empty User-Agent", "GET /r0 HTTP/1.1\r\nHost: app.example\r\nUser-Agent:\r\n\r\n")
	add("two User-Agent fields", "GET /r0 HTTP/1.1\r\nHost: app.example\r\nUser-Agent: one\r\nUser-Agent: two\r\n\r\n")
	add("Forwarded and X-Forwarded-* from the client", "GET /r0 HTTP/1.1\r\n"+base+"Forwarded: for=1.1.1.1\r\nX-Forwarded-For: 2.2.2.2, 3.3.3.3\r\nX-Forwarded-For: 4.4.4.4\r\nX-Forwarded-Host: evil.example\r\nX-Forwarded-Proto: https\r\n\r\n")
	add("a POST with a body", "POST /r0?x=1 HTTP/1.1\r\n"+base+"Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world")
	add("a POST with an empty body", "POST /r0 HTTP/1.1\r\n"+base+"Content-Length: 0\r\n\r\n")
	add("a PUT with an empty body", "PUT /r0 HTTP/1.1\r\n"+base+"Content-Length: 0\r\n\r\n")
	add("a PATCH without framing fields", "PATCH /r0 HTTP/1.1\r\n"+base+"\r\n")
	add("a DELETE with an explicit zero length", "DELETE /r0 HTTP/1.1\r\n"+base+"Content-Length: 0\r\n\r\n")
	add("a GET with an explicit zero length", "GET /r0 HTTP/1.1\r\n"+base+"Content-Length: 0\r\n\r\n")
	add("a POST with an Idempotency-Key", "POST /r0 HTTP/1.1\r\n"+base+"Idempotency-Key: k1\r\nContent-Length: 1\r\n\r\nx")
	add("Connection naming Content-Length", "POST /r0 HTTP/1.1\r\n"+base+"Connection: Content-Length\r\nContent-Length: 2\r\n\r\nab")
	add("a chunked POST", "POST /r0 HTTP/1.1\r\n"+base+"Transfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n")
	add("a host with a port and a query", "GET /r0?a=1&b=%20c&d HTTP/1.1\r\nHost: App.Example:8080\r\n\r\n")
	add("a query ReverseProxy rewrites", "GET /r0?a=1;b=2&c=%zz HTTP/1.1\r\n"+base+"\r\n")
	add("a HEAD", "HEAD /r0 HTTP/1.1\r\n"+base+"\r\n")
	add("repeated fields and odd spacing", "GET /r0 HTTP/1.1\r\n"+base+"X-Multi: 1\r\nX-Multi:  2 \r\nAccept: */*\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n")
	add("an HTTP/1.0 request", "GET /r0 HTTP/1.0\r\n"+base+"\r\n")
	add("a Connection: close request", "GET /r0 HTTP/1.1\r\n"+base+"Connection: close\r\n\r\n")
	add("a path with characters to escape", "GET /r0/a%20b/%C3%A9 HTTP/1.1\r\n"+base+"\r\n")
	for i := 1; i < len(answers); i++ {
		add(fmt.Sprintf("answer %d", i), fmt.Sprintf("GET /r%d HTTP/1.1\r\n%s\r\n", i, base))
		add(fmt.Sprintf("answer %d to a client asking for trailers", i), fmt.Sprintf("GET /r%d HTTP/1.1\r\n%sTe: trailers\r\n\r\n", i, base))
	}
	add("answer 0 to a HEAD", "HEAD /r0 HTTP/1.1\r\n"+base+"\r\n")

	// The hostile requests must take the direct path (else the comparison proves nothing about it).
	mustBeDirect := []string{"a plain GET", "Connection naming X-Forwarded-For", "Connection naming X-Forwarded-Host and Proto",
		"Te with trailers and Trailer", "Proxy-Connection, Keep-Alive and Proxy-Authorization", "Connection upgrade without Upgrade",
		"several Connection fields and values", "Connection naming User-Agent", "no User-Agent", "an empty User-Agent",
		"Forwarded and X-Forwarded-* from the client", "a POST with a body", "a POST with an Idempotency-Key",
		"Connection naming Content-Length", "a HEAD", "an HTTP/1.0 request", "a Connection: close request", "answer 2",
		"a POST with an empty body", "a PUT with an empty body", "a PATCH without framing fields",
		"a DELETE with an explicit zero length", "a GET with an explicit zero length"}
	// Empty bodies keep a zero length (RFC 9110 8.6: origins such as lighttpd answer 411 without one).
	zeroLength := []string{"a POST with an empty body", "a PUT with an empty body", "a PATCH without framing fields",
		"a DELETE with an explicit zero length", "a GET with an explicit zero length"}
	// Pairs of fronts, each on one app URL: ReverseProxy writing its own answers (the reference, as the
	// path was before the relay served it) and the same app answering on the direct path or on the
	// relayed path: on the h1 client (noDirect), on net/http's Transport
	// (fast_path=false), behind the balancer (breaker=true: an upstream.Set of one instance), and on the
	// direct path with the balancer's one instance (its attempts counted as the balancer counts them);
	// the app as two instances (the same address twice), behind the balancer and on the direct path.
	type pair struct{ name, option string }
	pairs := []pair{{"direct", ""}, {"relay on h1", ""}, {"relay with fast_path=false", "fast_path=false"},
		{"relay behind the balancer", "breaker=true"}, {"direct with the balancer's instance", "breaker=true"},
		{"relay behind the balancer of two", "two"}, {"direct with the balancer of two", "two"}}
	balanced := map[string]*Proxy{} // the balancer subjects, by pair
	for _, mode := range []string{"", "?host_header=upstream", "/base"} {
		u, u2, got := recordingApps(t, answers)
		fronts := make([]string, 2*len(pairs)) // reference i at 2i, subject at 2i+1
		var direct, directTwo *Proxy
		for i := range fronts {
			pr := pairs[i/2]
			raw := u + mode
			switch {
			case pr.option == "two":
				path, _, _ := strings.Cut(mode, "?")
				raw = u + path + "|" + u2 + mode
			case pr.option != "":
				raw = withOption(raw, pr.option)
			}
			p, _, _ := build(t, raw)
			p.viaReverseProxy = i%2 == 0
			p.noDirect = i%2 == 0 || !strings.HasPrefix(pr.name, "direct")
			switch {
			case i == 1:
				direct = p
			case i%2 == 1 && pr.name == "direct with the balancer of two":
				directTwo = p
			}
			if pr.option == "breaker=true" || pr.option == "two" {
				if p.set == nil {
					t.Fatal("breaker=true built no balancer")
				}
				if i%2 == 1 {
					balanced[pr.name] = p
				}
			}
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r, _ = reqinfo.Attach(r)
				p.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			fronts[i] = front.Listener.Addr().String()
		}
		for _, rq := range requests {
			t.Run(rq.name+" "+mode, func(t *testing.T) {
				if slices.Contains(mustBeDirect, rq.name) {
					r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rq.raw)))
					if err != nil || !direct.directEligible(r) {
						t.Fatalf("the request does not take the direct path (%v)", err)
					}
					// With two instances too, unless the Host sent depends on the instance.
					if directTwo.ServesDirect(r) == strings.Contains(mode, "host_header=upstream") {
						t.Fatalf("ServesDirect is %v for the app of two instances", !strings.Contains(mode, "host_header=upstream"))
					}
				}
				apps := make([]recorded, len(fronts))
				clients := make([]seen, len(fronts))
				for i, addr := range fronts {
					clients[i] = rawExchange(t, addr, rq.raw)
					select {
					case apps[i] = <-got:
					case <-time.After(5 * time.Second):
						t.Fatalf("front %d (%s): the app got no request; client saw %+v", i, pairs[i/2].name, clients[i])
					}
					// The XFF peer port differs between the fronts' clients: compare without it.
					for j, l := range apps[i].Head {
						if strings.HasPrefix(l, "X-Forwarded-For:") {
							apps[i].Head[j] = "X-Forwarded-For: (peer)" + strings.TrimPrefix(l, "X-Forwarded-For:")
						}
					}
				}
				if slices.Contains(zeroLength, rq.name) && !slices.Contains(apps[1].Head, "Content-Length: 0") {
					t.Errorf("the app saw no Content-Length: 0: %q", apps[1].Head)
				}
				for i := 1; i < len(fronts); i += 2 {
					if d := cmp.Diff(apps[i-1], apps[i]); d != "" {
						t.Errorf("the app saw something else (-ReverseProxy +%s):\n%s", pairs[i/2].name, d)
					}
					if d := cmp.Diff(clients[i-1], clients[i]); d != "" {
						t.Errorf("the client saw something else (-ReverseProxy +%s):\n%s", pairs[i/2].name, d)
					}
				}
				if clients[1].BodyErr != "" && !strings.Contains(rq.name, "HEAD") {
					t.Logf("client error on every path: %s", clients[1].BodyErr)
				}
			})
		}
		// The balancer and the direct path counted the same attempts with the same outcomes, and ended
		// every one (an attempt ends as its body closes, which may be just after the client read it).
		for _, names := range [][2]string{{"relay behind the balancer", "direct with the balancer's instance"},
			{"relay behind the balancer of two", "direct with the balancer of two"}} {
			var health [2]string
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
				for i, name := range names {
					h := balanced[name].Health()
					for j := range h {
						h[j].Address, h[j].LastChecked = "", time.Time{}
					}
					health[i] = fmt.Sprintf("%+v", h)
				}
				if health[0] == health[1] && !strings.Contains(health[0], "InFlight:1") || time.Now().After(deadline) {
					break
				}
			}
			if health[0] != health[1] || !strings.Contains(health[0], "Known:true") {
				t.Errorf("%s: the health reports differ:\n balancer: %s\n direct:   %s", mode, health[0], health[1])
			}
		}
	}
}

// withOption adds the option kv to the app URL raw.
func withOption(raw, kv string) string {
	if strings.Contains(raw, "?") {
		return raw + "&" + kv
	}
	return raw + "?" + kv
}

// BenchmarkDirectPath compares a small GET on the direct path with the ReverseProxy path, writing its own
// answer or through the relay.
func BenchmarkDirectPath(b *testing.B) {
	for _, mode := range []string{"ReverseProxy", "relay", "direct"} {
		b.Run(mode, func(b *testing.B) {
			be := newBackend(b, "a")
			p, _, _ := build(b, be.srv.URL)
			p.viaReverseProxy = mode == "ReverseProxy"
			p.noDirect = mode != "direct"
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := httptest.NewRequestWithContext(context.Background(), "GET", "/x", nil)
					r.Header.Set("User-Agent", "bench")
					r.Header.Set("Accept", "*/*")
					w := httptest.NewRecorder()
					p.ServeHTTP(w, r)
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// FuzzDirectPathMatchesReverseProxy: for any extra request fields and response fields, the app and the
// client see the same on the direct path as on the ReverseProxy path.
func FuzzDirectPathMatchesReverseProxy(f *testing.F) {
	f.Add("Connection: X-Forwarded-For\nX-Forwarded-For: 1.2.3.4", "Connection: X-A\nX-A: 1")
	f.Add("Te: trailers\nTrailer: X\nProxy-Connection: x\nKeep-Alive: 1", "Keep-Alive: timeout=1\nProxy-Connection: y")
	f.Add("Connection: a, B\nConnection: keep-alive\nA: 1\nB: 2", "Set-Cookie: a\nSet-Cookie: b\nConnection: set-cookie")
	f.Add("User-Agent:\nUpgrade: websocket", "Upgrade: h2c\nTe: x\nTrailer: X-Y")
	f.Add("Connection: User-Agent, Idempotency-Key\nUser-Agent: a", "Content-Type: text/event-stream")
	var mu sync.Mutex
	respFields := ""
	u, got := recordingAppFunc(f, func(int) string {
		mu.Lock()
		defer mu.Unlock()
		return "HTTP/1.1 200 OK\r\n" + respFields + "Content-Length: 2\r\n\r\nok"
	})
	fronts := make([]string, 2)
	for i := range fronts {
		p, _, _ := build(f, u)
		p.viaReverseProxy = i == 0
		p.noDirect = i == 0
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r, _ = reqinfo.Attach(r)
			p.ServeHTTP(w, r)
		}))
		f.Cleanup(front.Close)
		fronts[i] = front.Listener.Addr().String()
	}
	fields := func(s string) string {
		var b strings.Builder
		for i, l := range strings.Split(s, "\n") {
			if i >= 16 || strings.ContainsAny(l, "\r\x00") || !strings.Contains(l, ":") {
				continue
			}
			b.WriteString(l + "\r\n")
		}
		return b.String()
	}
	f.Fuzz(func(t *testing.T, req, resp string) {
		mu.Lock()
		respFields = fields(resp)
		mu.Unlock()
		raw := "GET /r0 HTTP/1.1\r\nHost: app.example\r\n" + fields(req) + "\r\n"
		var apps [2]recorded
		var clients [2]seen
		for i, addr := range fronts {
			clients[i] = rawExchange(t, addr, raw)
			select {
			case apps[i] = <-got:
			default: // the server refused the request before the proxy ran
			}
			for j, l := range apps[i].Head {
				if strings.HasPrefix(l, "X-Forwarded-For:") {
					apps[i].Head[j] = "X-Forwarded-For: (peer)" + strings.TrimPrefix(l, "X-Forwarded-For:")
				}
			}
		}
		if d := cmp.Diff(apps[0], apps[1]); d != "" {
			t.Errorf("app (-ReverseProxy +direct):\n%s", d)
		}
		if d := cmp.Diff(clients[0], clients[1]); d != "" {
			t.Errorf("client (-ReverseProxy +direct):\n%s", d)
		}
	})
}
