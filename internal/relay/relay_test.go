package relay

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/appconn"
	"github.com/switchyard/switchyard/internal/spool"
)

// body is an app's answer body: its pieces, each read returning one, then err (io.EOF when nil).
type body struct {
	pieces  []string
	err     error
	before  func() // NotifyBeforeWait's f, called before every read that has no piece ready
	waits   map[int]bool
	read    int
	closed  int
	trailer http.Header // set on res.Trailer at Close, as a chunked body fills it
	res     *http.Response
}

func (b *body) Read(p []byte) (int, error) {
	if b.waits[b.read] && b.before != nil {
		b.before()
	}
	if b.read < len(b.pieces) {
		n := copy(p, b.pieces[b.read])
		b.read++
		return n, nil
	}
	if b.err != nil {
		return 0, b.err
	}
	return 0, io.EOF
}

func (b *body) Close() error {
	b.closed++
	for k, vv := range b.trailer {
		b.res.Trailer[k] = vv
	}
	return nil
}

type notifying struct{ *body }

func (n notifying) NotifyBeforeWait(f func()) { n.before = f }

// serve runs Write with a CGI head's options for each request to a test server and returns the raw
// answer the client read.
func serve(t *testing.T, method string, res func() *http.Response) string {
	t.Helper()
	return serveWith(t, method, &Options{App: "a", Upstream: "u", Logger: slog.New(slog.DiscardHandler), CGIHead: true}, res)
}

// serveWith is serve with the options o.
func serveWith(t *testing.T, method string, o *Options, res func() *http.Response) string {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		Write(w, r, res(), o)
	}))
	t.Cleanup(srv.Close)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, method+" / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(bufio.NewReader(c))
	<-done // the handler's writes to the test's body happen before the test reads them
	return string(raw)
}

func TestWrite(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	for _, tt := range []struct {
		name    string
		method  string
		status  int
		header  http.Header
		length  int64
		pieces  []string
		err     error
		trailer http.Header
		want    []string // substrings of the raw answer
		notWant []string
	}{
		{name: "hop-by-hop fields and those Connection names are dropped",
			status: 200, length: 2, pieces: []string{"ok"},
			header: hdr("Connection", "X-Secret, keep-alive", "X-Secret", "s", "Keep-Alive", "timeout=5",
				"Proxy-Connection", "x", "Upgrade", "h2c", "Te", "trailers", "X-Kept", "k", "Set-Cookie", "a=1", "Set-Cookie", "b=2"),
			want:    []string{"HTTP/1.1 200 OK\r\n", "X-Kept: k\r\n", "Set-Cookie: a=1\r\n", "Set-Cookie: b=2\r\n", "Content-Length: 2\r\n", "\r\n\r\nok"},
			notWant: []string{"X-Secret", "Keep-Alive", "Proxy-Connection", "Upgrade", "Te:"}},
		{name: "the app's Content-Length gives way to the Response's",
			status: 200, length: 3, pieces: []string{"abc"}, header: hdr("Content-Length", "99"),
			want: []string{"Content-Length: 3\r\n", "\r\n\r\nabc"}, notWant: []string{"99"}},
		{name: "no Content-Length for 204",
			status: 204, length: 0, header: hdr("X-A", "1"),
			want: []string{"HTTP/1.1 204 No Content\r\n", "X-A: 1\r\n"}, notWant: []string{"Content-Length"}},
		{name: "an unknown length is chunked and flushed",
			status: 200, length: -1, pieces: []string{"ab", "cd"},
			want: []string{"Transfer-Encoding: chunked\r\n", "2\r\nab\r\n", "2\r\ncd\r\n", "0\r\n\r\n"}},
		{name: "announced trailers follow the body",
			status: 200, length: -1, pieces: []string{"ab"}, trailer: hdr("X-Sum", "1"),
			want: []string{"Trailer: X-Sum\r\n", "0\r\nX-Sum: 1\r\n\r\n"}},
		{name: "a HEAD answer's body is read and dropped",
			method: "HEAD", status: 200, length: 5, pieces: []string{"hello"},
			want: []string{"Content-Length: 5\r\n"}, notWant: []string{"hello"}},
		{name: "a body failing mid-way aborts after the head and the bytes so far",
			status: 200, length: 10, pieces: []string{"abc"}, err: errors.New("reset"),
			want: []string{"HTTP/1.1 200 OK\r\n", "Content-Length: 10\r\n", "\r\n\r\nabc"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			var b *body
			raw := serve(t, method, func() *http.Response {
				b = &body{pieces: tt.pieces, err: tt.err, trailer: tt.trailer}
				res := &http.Response{StatusCode: tt.status, Header: tt.header, ContentLength: tt.length, Body: b}
				if tt.header == nil {
					res.Header = http.Header{}
				}
				if tt.trailer != nil {
					res.Trailer = http.Header{}
					for k := range tt.trailer {
						res.Trailer[k] = nil
					}
				}
				b.res = res
				return res
			})
			for _, s := range tt.want {
				if !strings.Contains(raw, s) {
					t.Errorf("answer lacks %q:\n%s", s, raw)
				}
			}
			for _, s := range tt.notWant {
				if strings.Contains(raw, s) {
					t.Errorf("answer has %q:\n%s", s, raw)
				}
			}
			if b.closed != 1 {
				t.Errorf("body closed %d times, want once", b.closed)
			}
		})
	}
}

// TestWriteCopiesAnHTTPHeadAsSent: without CGIHead (the HTTP direct path) the app's Content-Length is
// the framing and is passed as sent, as httputil.ReverseProxy passes it: a HEAD answer's too, whose
// Response has no body to measure.
func TestWriteCopiesAnHTTPHeadAsSent(t *testing.T) {
	for _, tt := range []struct {
		method string
		length int64
		pieces []string
	}{
		{"GET", 5, []string{"hello"}},
		{"HEAD", -1, nil},
	} {
		t.Run(tt.method, func(t *testing.T) {
			raw := serveWith(t, tt.method, &Options{Logger: slog.New(slog.DiscardHandler)}, func() *http.Response {
				return &http.Response{StatusCode: 200, Header: http.Header{"Content-Length": {"5"}},
					ContentLength: tt.length, Body: &body{pieces: tt.pieces}}
			})
			if !strings.Contains(raw, "Content-Length: 5\r\n") || strings.Count(raw, "Content-Length") != 1 {
				t.Fatalf("answer lacks the app's Content-Length or has two:\n%s", raw)
			}
		})
	}
}

// TestWriteFlushesAStreamedAnswerWhoseBodyCannotSay: a Body without WaitNotifier is taken to wait at
// every read of a streamed answer (unknown length, an event stream), flushed after every write as
// ReverseProxy flushes it; an answer of known length is left to the server's buffering.
func TestWriteFlushesAStreamedAnswerWhoseBodyCannotSay(t *testing.T) {
	for _, tt := range []struct {
		name        string
		length      int64
		contentType string
		streamed    bool
	}{
		{"unknown length", -1, "text/plain", true},
		{"an event stream of known length", 2, "Text/Event-Stream; charset=utf-8", true},
		{"known length", 2, "text/plain", false},
		{"known length, a type naming event-stream loosely", 2, "text/event-streamer", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			flushes := 0 // under eachWriteFlusher's lock, read after Write returned
			rec := httptest.NewRecorder()
			w := &flushRecorder{ResponseRecorder: rec, onFlush: func() { flushes++ }}
			res := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {tt.contentType}},
				ContentLength: tt.length, Body: &body{pieces: []string{"a", "b"}}}
			Write(w, httptest.NewRequest("GET", "/", nil), res, &Options{Logger: slog.New(slog.DiscardHandler)})
			if tt.streamed && flushes < 2 || !tt.streamed && flushes != 0 {
				t.Fatalf("%d flushes (streamed: %v)", flushes, tt.streamed)
			}
			if rec.Body.String() != "ab" {
				t.Fatalf("body %q", rec.Body.String())
			}
		})
	}
}

// TestWriteFlushesWhenTheNextReadWouldWait: with a WaitNotifier body, what was written goes out before a
// read that waits, and not before one served from a buffer; a head of known length waits for body bytes.
func TestWriteFlushesWhenTheNextReadWouldWait(t *testing.T) {
	var flushedAt []int // the read counts at which the recorder saw a flush
	rec := httptest.NewRecorder()
	b := &body{pieces: []string{"a", "b", "c"}, waits: map[int]bool{0: true, 2: true}}
	res := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 3, Body: notifying{b}}
	w := &flushRecorder{ResponseRecorder: rec, onFlush: func() { flushedAt = append(flushedAt, b.read) }}
	Write(w, httptest.NewRequest("GET", "/", nil), res, &Options{Logger: slog.New(slog.DiscardHandler)})
	if want := []int{2}; !equal(flushedAt, want) {
		t.Fatalf("flushed before reads %v, want %v (the head and a, b before the wait after them; not the head alone)", flushedAt, want)
	}
	if rec.Body.String() != "abc" {
		t.Fatalf("body %q", rec.Body.String())
	}
}

type flushRecorder struct {
	*httptest.ResponseRecorder
	onFlush func()
}

func (f *flushRecorder) Flush() { f.onFlush(); f.ResponseRecorder.Flush() }

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestWriteAbortsAStalledBody: a stall after the head panics with http.ErrAbortHandler and logs the
// stall once.
func TestWriteAbortsAStalledBody(t *testing.T) {
	var logs strings.Builder
	b := &body{pieces: []string{"ab"}, err: &appconn.StallError{Limit: 1}}
	res := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 10, Body: b}
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", v)
		}
		if l := logs.String(); strings.Count(l, "\n") != 1 || !strings.Contains(l, "uwsgi response aborted: app stalled mid-body") {
			t.Fatalf("log %q", l)
		}
		if b.closed != 1 {
			t.Fatalf("body closed %d times", b.closed)
		}
	}()
	Write(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), res,
		&Options{Name: "uwsgi", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
}

// transportFunc is a Transport from a function.
type transportFunc func(w http.ResponseWriter, r *http.Request) *http.Response

func (f transportFunc) RoundTrip(w http.ResponseWriter, r *http.Request) *http.Response {
	return f(w, r)
}

// TestServeSpoolsOnlyWhenTheTransportDeclaresIt: a chunked body reaches a transport that declared
// spooling with its length known and marked as spooled; one that did not gets the client's stream.
func TestServeSpoolsOnlyWhenTheTransportDeclaresIt(t *testing.T) {
	for _, declared := range []bool{true, false} {
		t.Run(map[bool]string{true: "declared", false: "not declared"}[declared], func(t *testing.T) {
			var gotLength int64
			var gotSpooled bool
			var gotBody string
			tr := transportFunc(func(w http.ResponseWriter, r *http.Request) *http.Response {
				gotLength, gotSpooled = r.ContentLength, Spooled(r)
				b, _ := io.ReadAll(r.Body)
				gotBody = string(b)
				return &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 2, Body: &body{pieces: []string{"ok"}}}
			})
			o := &Options{Logger: slog.New(slog.DiscardHandler)}
			if declared {
				o.Spool = &spool.Options{}
			}
			r := httptest.NewRequest("POST", "/", strings.NewReader("hello"))
			r.ContentLength = -1 // as a chunked body arrives
			rec := httptest.NewRecorder()
			Serve(rec, r, tr, o)
			if rec.Code != 200 || rec.Body.String() != "ok" || gotBody != "hello" {
				t.Fatalf("answer %d %q, body sent %q", rec.Code, rec.Body, gotBody)
			}
			if want := map[bool]int64{true: 5, false: -1}[declared]; gotLength != want || gotSpooled != declared {
				t.Fatalf("transport saw length %d spooled %v, want %d %v", gotLength, gotSpooled, want, declared)
			}
		})
	}
}

// TestUnannouncedTrailersAreSentPrefixed: trailers the app did not announce still reach the client, as
// ReverseProxy sends them (http.TrailerPrefix).
func TestUnannouncedTrailersAreSentPrefixed(t *testing.T) {
	raw := serve(t, "GET", func() *http.Response {
		b := &body{pieces: []string{"ab"}, trailer: http.Header{"X-Late": {"1"}}}
		res := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: -1, Body: b, Trailer: http.Header{}}
		b.res = res
		return res
	})
	if strings.Contains(raw, "Trailer:") || !strings.Contains(raw, "0\r\nX-Late: 1\r\n\r\n") {
		t.Fatalf("answer:\n%s", raw)
	}
}

// failingWriter fails every body write, as a client that went away.
type failingWriter struct{ *httptest.ResponseRecorder }

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

// TestAClientGoneIsLoggedAndNotAborted: a failed write ends the relay with one Info line (status 499),
// the body closed, no panic.
func TestAClientGoneIsLoggedAndNotAborted(t *testing.T) {
	var logs strings.Builder
	b := &body{pieces: []string{"ab", "cd"}}
	res := &http.Response{StatusCode: 200, Header: http.Header{}, ContentLength: 4, Body: b}
	Write(failingWriter{httptest.NewRecorder()}, httptest.NewRequest("GET", "/", nil), res,
		&Options{App: "a", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if l := logs.String(); strings.Count(l, "\n") != 1 || !strings.Contains(l, "level=INFO") ||
		!strings.Contains(l, "upstream response not delivered: client went away") || !strings.Contains(l, "status=499") {
		t.Fatalf("log %q", l)
	}
	if b.closed != 1 || b.read != 1 {
		t.Fatalf("body read %d times, closed %d times; want 1, 1", b.read, b.closed)
	}
}
