package cgiwire_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/adapters/cgiwire"
	"github.com/switchyard/switchyard/adapters/uwsgi"
	"github.com/switchyard/switchyard/delegate"
	"github.com/switchyard/switchyard/internal/leakcheck"
	"github.com/switchyard/switchyard/internal/testpeer"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// fakeApp answers each uwsgi connection with serve after reading the packet.
func fakeApp(t *testing.T, serve func(c net.Conn, body io.Reader)) string {
	t.Helper()
	return "uwsgi+unix://" + testpeer.ServeUnix(t, "app.sock", func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, _, _, err := uwsgi.ReadPacket(br); err != nil {
			t.Errorf("packet: %v", err)
			return
		}
		serve(c, br)
	})
}

func handler(t *testing.T, app string, logs io.Writer) http.Handler {
	t.Helper()
	return handlerFor(t, app, logs, nil)
}

// handlerFor builds app's handler after edit (when not nil) changed its target.
func handlerFor(t *testing.T, app string, logs io.Writer, edit func(*adapters.Target)) http.Handler {
	t.Helper()
	reg := adapters.NewRegistry(slog.New(slog.NewTextHandler(logs, nil)))
	reg.MustRegister(uwsgi.Kind())
	target, _, err := reg.Parse(app)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&target)
	}
	h, err := reg.Build(target)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.(*cgiwire.Handler); !ok {
		t.Fatalf("handler is %T", h)
	}
	return h
}

func TestClientBodyFailures(t *testing.T) {
	app := fakeApp(t, func(c net.Conn, body io.Reader) {
		io.Copy(io.Discard, body)
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\nread it all")
	})
	var logs bytes.Buffer
	h := handler(t, app, &logs)
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 10)
		h.ServeHTTP(w, r)
	})
	tests := []struct {
		name      string
		body      io.Reader
		length    int64
		gone      bool // the client went away first
		status    int  // 0: no answer at all
		unlimited bool
		noTemp    bool // the temp directory is missing
	}{
		{name: "a known-length body over the gateway's limit answers 413", length: 100, status: 413},
		{name: "a chunked body over the gateway's limit answers 413", length: -1, status: 413},
		{name: "a chunked body the client breaks answers 400", length: -1, status: 400, unlimited: true,
			body: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(errors.New("unexpected EOF in chunk")))},
		{name: "a client gone while its chunked body is spooled gets no answer", length: -1, gone: true, unlimited: true},
		{name: "a chunked body the gateway cannot spool (no temp dir) answers 500", length: -1, status: 500, unlimited: true,
			noTemp: true, body: strings.NewReader(strings.Repeat("y", cgiwire.SpoolMemory+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == nil {
				body = strings.NewReader(strings.Repeat("x", 100))
			}
			req := httptest.NewRequest("POST", "/", body)
			req.ContentLength = tt.length
			if tt.noTemp {
				t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
			}
			if tt.gone {
				ctx, cancel := context.WithCancel(req.Context())
				cancel()
				req = req.WithContext(ctx)
			}
			rec := httptest.NewRecorder()
			if tt.unlimited {
				h.ServeHTTP(rec, req)
			} else {
				limited.ServeHTTP(rec, req)
			}
			if tt.status == 0 {
				if rec.Body.Len() != 0 || len(rec.Header()) != 0 {
					t.Fatalf("answered %d %q to a client that is gone", rec.Code, rec.Body)
				}
				return
			}
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
		})
	}
}

func TestAnEarlyAnswerDoesNotWaitForASlowUpload(t *testing.T) {
	tests := []struct {
		name   string
		length int64
	}{
		// Under 256 KiB net/http tries to drain the body before the head: without full duplex that
		// deadlocked against our pending body read.
		{name: "a small declared body", length: 1000},
		{name: "a large declared body", length: 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fakeApp(t, func(c net.Conn, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope")
			})
			var logs bytes.Buffer
			h := handler(t, app, &logs)
			returned := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(returned)
				h.ServeHTTP(w, r)
			}))
			defer srv.Close()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()

			pr, pw := io.Pipe()
			defer pw.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/", pr)
			req.ContentLength = tt.length
			go pw.Write([]byte("only the start of the body")) // then the client stalls
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 403 || string(body) != "nope" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			select {
			case <-returned:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler is still waiting for the stalled upload")
			}
		})
	}
}

// TestReadTimeoutCutsAStalledBody: read_timeout is a stall limit on the response body. An app that stops
// sending mid-body gets its client's stream cut (never a complete-looking answer) and its connection
// closed; an app that keeps sending, however slowly, is never cut.
func TestReadTimeoutCutsAStalledBody(t *testing.T) {
	const limit = 250 * time.Millisecond
	tests := []struct {
		name    string
		opts    string
		head    string
		pause   time.Duration // between body pieces; -1: hang until the gateway closes the connection
		count   int           // pieces after the first
		cut     bool
		gateway time.Duration // Target.ReadTimeout
	}{
		{name: "an app silent mid-body past read_timeout is cut and its connection closed", opts: "?read_timeout=" + limit.String(),
			head: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", pause: -1, cut: true},
		{name: "an app silent mid-body of unknown length is cut too, not ended as if complete", opts: "?read_timeout=" + limit.String(),
			head: "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", pause: -1, cut: true},
		{name: "an app silent right after its head is cut", opts: "?read_timeout=" + limit.String(),
			head: "HTTP/1.0 200 OK\r\n\r\n", pause: -1, cut: true},
		{name: "the gateway's read timeout applies without the option", gateway: limit,
			head: "HTTP/1.0 200 OK\r\n\r\n", pause: -1, cut: true},
		// read_timeout ten times the app's pace, the stream longer than read_timeout: a loaded machine (the
		// whole suite under -race on two cores) delays a heartbeat by a few hundred ms at times, which is
		// scheduling, not a stall.
		{name: "an event stream with heartbeats more often than read_timeout is never cut", opts: "?read_timeout=1s",
			head: "HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", pause: 100 * time.Millisecond, count: 15},
		{name: "read_timeout=0 lets a body pause longer than the gateway's limit", opts: "?read_timeout=0", gateway: limit,
			head: "HTTP/1.0 200 OK\r\n\r\n", pause: 2 * limit, count: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			appClosed := make(chan struct{})
			first := "first;"
			if strings.HasSuffix(tt.name, "right after its head is cut") {
				first = ""
			}
			app := fakeApp(t, func(c net.Conn, _ io.Reader) {
				io.WriteString(c, tt.head+first)
				if tt.pause < 0 {
					io.Copy(io.Discard, c) // until the gateway closes the connection
					close(appClosed)
					return
				}
				for i := 0; i < tt.count; i++ {
					time.Sleep(tt.pause) // the app's own pace, not a synchronisation
					io.WriteString(c, "beat;")
				}
			})
			var logs syncBuffer
			h := handlerFor(t, app+tt.opts, &logs, func(tg *adapters.Target) { tg.ReadTimeout = tt.gateway })
			srv := httptest.NewServer(h)
			defer srv.Close()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			start := time.Now()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			took := time.Since(start)
			if !tt.cut {
				if err != nil || resp.StatusCode != 200 || string(body) != first+strings.Repeat("beat;", tt.count) {
					t.Fatalf("status %d body %q err %v, want the whole stream", resp.StatusCode, body, err)
				}
				return
			}
			if resp.StatusCode != 200 || err == nil || string(body) != first {
				t.Fatalf("status %d body %q err %v, want a 200 whose body breaks off after %q", resp.StatusCode, body, err, first)
			}
			// Not before the limit; and well before any default (60 s): the cut is read_timeout's. The
			// generous bound is no speed target, only which limit acted.
			if took < limit || took > limit+20*time.Second {
				t.Errorf("cut after %v, want it from read_timeout %v", took, limit)
			}
			select {
			case <-appClosed:
			case <-time.After(5 * time.Second):
				t.Fatal("the stalled connection is still open")
			}
			if l := logs.String(); !strings.Contains(l, "stalled mid-body") || !strings.Contains(l, "read_timeout") || !strings.Contains(l, "upstream=unix:") {
				t.Errorf("log lacks the stall line naming the upstream:\n%s", l)
			}
		})
	}
}

// TestResponseHeadLimit: a response head larger than the limit answers 502, and an endless one is not
// held: the gateway stops reading and closes the connection.
func TestResponseHeadLimit(t *testing.T) {
	headers := func(n int) string {
		var b strings.Builder
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 1000))
		}
		return b.String()
	}
	tests := []struct {
		name   string
		head   string // after the status line; "" with endless: headers until the gateway closes
		limit  int64  // Target.MaxResponseHeaderBytes (0: the default 256 KiB)
		status int
	}{
		{name: "a 200 KiB head passes the default limit", head: headers(200), status: 200},
		{name: "a 300 KiB head answers 502", head: headers(300), status: 502},
		{name: "an endless head answers 502", status: 502},
		{name: "a head over a configured 4 KiB limit answers 502", head: headers(5), limit: 4096, status: 502},
		{name: "a 300 KiB head passes a configured 1 MiB limit", head: headers(300), limit: 1 << 20, status: 200},
		{name: "a head that fits the limit with its informational heads passes", head: "X-A: 1\r\n", limit: 4096, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fakeApp(t, func(c net.Conn, _ io.Reader) {
				bw := bufio.NewWriter(c)
				if strings.Contains(tt.name, "informational") {
					bw.WriteString("HTTP/1.1 103 Early Hints\r\nLink: " + strings.Repeat("l", 3000) + "\r\n\r\n")
				}
				bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
				if tt.head == "" {
					for i := 0; ; i++ {
						if _, err := fmt.Fprintf(bw, "X-Endless-%d: %s\r\n", i, strings.Repeat("e", 1000)); err != nil {
							return // the gateway closed the connection
						}
					}
				}
				bw.WriteString(tt.head + "\r\nok")
				bw.Flush()
			})
			var logs syncBuffer
			h := handlerFor(t, app, &logs, func(tg *adapters.Target) { tg.MaxResponseHeaderBytes = tt.limit })
			// A real server: the 103 goes to the client as it arrived (a recorder would keep it as the status).
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			resp, err := http.Get(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 200 && string(body) != "ok" {
				t.Fatalf("body %q", body)
			}
			if tt.status == 502 && !strings.Contains(logs.String(), "response head larger than") {
				t.Errorf("log lacks the cause:\n%s", logs.String())
			}
		})
	}
}

// TestTimeoutCountsFromTheLastPieceOfUpload: the head timeout is renewed whenever a piece of the request
// body reaches the app, so an upload slower than the timeout is not the app's delay; the app's own
// silence after the upload still is.
func TestTimeoutCountsFromTheLastPieceOfUpload(t *testing.T) {
	const timeout = 300 * time.Millisecond
	tests := []struct {
		name     string
		appPause time.Duration // after reading the body, before answering
		status   int
	}{
		{name: "an upload slower than the timeout is answered", status: 200},
		{name: "an app silent past the timeout after the upload answers 504", appPause: 5 * timeout, status: 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := fakeApp(t, func(c net.Conn, body io.Reader) {
				n, _ := io.CopyN(io.Discard, body, 8)
				if tt.appPause > 0 {
					select {
					case <-time.After(tt.appPause):
					case <-readClosed(c):
					}
				}
				fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d", n)
			})
			var logs syncBuffer
			h := handler(t, app+"?timeout="+timeout.String(), &logs)
			srv := httptest.NewServer(h)
			defer srv.Close()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			pr, pw := io.Pipe()
			go func() {
				for i := 0; i < 8; i++ { // 8 bytes over 8 × timeout/3: longer than the timeout
					time.Sleep(timeout / 3) // the client's pace, not a synchronisation
					if _, err := pw.Write([]byte("x")); err != nil {
						return
					}
				}
				pw.Close()
			}()
			defer pr.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/", pr)
			req.ContentLength = 8
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || tt.status == 200 && string(body) != "8" {
				t.Fatalf("got %d %q, want %d\n%s", resp.StatusCode, body, tt.status, logs.String())
			}
		})
	}
}

// readClosed returns a channel closed when c's peer closes (or c fails).
func readClosed(c net.Conn) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		io.Copy(io.Discard, c)
		close(ch)
	}()
	return ch
}

// syncBuffer collects log lines written from several goroutines.
type syncBuffer = adaptertest.LogBuffer

// TestAnUnreadBodyKeepsTheKeepAliveConnection: an app that answers a POST without reading its small body
// (a Django view that never touches request.POST), while the adapter's body copy has not read it either
// (held back here until the handler ends, as a busy scheduler does), behind a canary split and a cascade,
// must leave the client's keep-alive connection serving its next request. With full duplex on, net/http
// read the unread body itself after the handler returned, which armed its background read of the
// connection again; its read of the next request then panicked ("invalid concurrent Body.Read call") and
// dropped the connection, losing that request.
func TestAnUnreadBodyKeepsTheKeepAliveConnection(t *testing.T) {
	app := fakeApp(t, func(c net.Conn, _ io.Reader) {
		io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	h := handler(t, app, io.Discard)
	never := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%s %s reached an app it should not reach", r.Method, r.URL.Path)
	})
	front := &delegate.Split{New: never, Old: &delegate.Cascade{Apps: []delegate.App{{Name: "old", Handler: h}}}, Percent: 0}
	var logs syncBuffer
	srv := httptest.NewUnstartedServer(front)
	srv.Config.ErrorLog = log.New(&logs, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	t.Cleanup(cgiwire.HoldBodyCopyUntilStopped())

	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	for round := range 3 {
		for _, req := range []string{
			"POST /form HTTP/1.1\r\nHost: x\r\nCookie: switchyard_canary=c1\r\nContent-Length: 5\r\n\r\nqty=3",
			"GET /next HTTP/1.1\r\nHost: x\r\nCookie: switchyard_canary=c1\r\n\r\n",
		} {
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatalf("round %d: sending %q: %v", round, req, err)
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d: %q: no answer on the keep-alive connection: %v\nserver log:\n%s", round, req, err, logs.String())
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(b) != "ok" {
				t.Fatalf("round %d: %q: got %d %q (%v)", round, req, resp.StatusCode, b, err)
			}
		}
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the server panicked:\n%s", logs.String())
	}
}

// TestAnAppFailingMidUploadClosesTheConnection: an app that hangs up while the client is still sending its
// body gets the client a 502 that says the connection closes, and the connection closed: the body copy,
// blocked reading the client, is woken with an expired read deadline, and that failed read leaves the rest
// of the body on the wire (and cancels the connection's context in net/http).
func TestAnAppFailingMidUploadClosesTheConnection(t *testing.T) {
	app := fakeApp(t, func(c net.Conn, _ io.Reader) {}) // hangs up without answering
	srv := httptest.NewServer(handler(t, app, io.Discard))
	t.Cleanup(srv.Close)
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// The client sends the start of its body and waits for the answer before sending more.
	io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nthe start")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || !resp.Close {
		t.Errorf("got %d %q (connection close %v), want 502 and the connection closed", resp.StatusCode, body, resp.Close)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Error("the connection stayed open")
	}
}
