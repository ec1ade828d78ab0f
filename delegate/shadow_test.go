package delegate

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/switchyard/switchyard/internal/leakcheck"
)

// forward sends the request (method, path, headers, body) to url through a real socket and copies the
// answer back.
func forward(url string, client *http.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, url+r.URL.RequestURI(), r.Body)
		req.Header = r.Header.Clone()
		req.ContentLength = r.ContentLength
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, "502 "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
}

type shadowRig struct {
	front  *httptest.Server
	shadow *Shadow
	seen   chan Exchange
	client *http.Client
}

func newShadowRig(t *testing.T, old, shadowApp http.Handler, opts ShadowOptions) *shadowRig {
	t.Helper()
	oldSrv, newSrv := httptest.NewServer(old), httptest.NewServer(shadowApp)
	client := &http.Client{}
	rig := &shadowRig{seen: make(chan Exchange, 100), client: client}
	opts.Observe = func(ex Exchange) { rig.seen <- ex }
	rig.shadow = NewShadow(forward(oldSrv.URL, client), forward(newSrv.URL, client), opts)
	rig.front = httptest.NewServer(rig.shadow)
	t.Cleanup(func() {
		rig.front.Close()
		rig.shadow.Close()
		oldSrv.Close()
		newSrv.Close()
		client.CloseIdleConnections()
	})
	return rig
}

func (rig *shadowRig) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, rig.front.URL+path, strings.NewReader(body))
	if body == "" {
		req.Body = http.NoBody
	}
	resp, err := rig.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestASlowShadowNeverHoldsUpTheServedRequest(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { leakcheck.VerifyNone(t, before) }) // registered first, so it runs after the rig's cleanup
	arrived, release := make(chan string, 10), make(chan struct{})
	old := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old "+r.URL.Path) })
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		<-release
		io.WriteString(w, "new "+r.URL.Path)
	})
	rig := newShadowRig(t, old, slow, ShadowOptions{Workers: 1, Queue: 1})

	if _, body := rig.do(t, "GET", "/a", ""); body != "old /a" {
		t.Fatalf("client got %q; want the old app's answer", body)
	}
	if p := <-arrived; p != "/a" { // the only worker is now blocked in the shadow app
		t.Fatalf("shadow saw %q", p)
	}
	// While the shadow is blocked, requests are still served: one copy waits in the queue, the next is
	// dropped.
	for _, p := range []string{"/b", "/c", "/d"} {
		if _, body := rig.do(t, "GET", p, ""); body != "old "+p {
			t.Fatalf("client got %q while the shadow was blocked", body)
		}
	}
	if st := rig.shadow.Stats(); st.Queued != 2 || st.Dropped != 2 {
		t.Fatalf("stats while blocked = %+v; want 2 queued (/a, /b) and 2 dropped (/c, /d)", st)
	}
	close(release)
	for _, want := range []string{"/a", "/b"} {
		ex := <-rig.seen
		if ex.Path != want || string(ex.Served.Body) != "old "+want || string(ex.Shadow.Body) != "new "+want {
			t.Fatalf("exchange = %s served %q shadow %q; want %s", ex.Path, ex.Served.Body, ex.Shadow.Body, want)
		}
	}
	if p := <-arrived; p != "/b" {
		t.Fatalf("second copy went to %q", p)
	}
}

func TestADeadOrFailingShadowNeverBreaksTheServedRequest(t *testing.T) {
	old := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old") })
	for _, tc := range []struct {
		name      string
		shadow    http.Handler
		wantErr   string
		wantState int
	}{
		{"a shadow that aborts its answer is recorded as aborted", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			panic(http.ErrAbortHandler)
		}), "", 502}, // the forwarder sees the aborted connection: a 502 from its point of view
		{"a shadow that answers 500 is compared as such", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", 500)
		}), "", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rig := newShadowRig(t, old, tc.shadow, ShadowOptions{})
			if status, body := rig.do(t, "GET", "/x", ""); status != 200 || body != "old" {
				t.Fatalf("client got %d %q", status, body)
			}
			ex := <-rig.seen
			if ex.Shadow.Err != tc.wantErr || (ex.Shadow.Status != tc.wantState && !(tc.wantState == 502 && ex.Shadow.Status == 200)) {
				t.Fatalf("shadow answer = %+v", ex.Shadow)
			}
		})
	}
	t.Run("a shadow app that is not listening gives a 502 copy and a normal answer", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		oldSrv := httptest.NewServer(old)
		defer oldSrv.Close()
		seen := make(chan Exchange, 1)
		sh := NewShadow(forward(oldSrv.URL, http.DefaultClient), forward(dead.URL, http.DefaultClient), ShadowOptions{Observe: func(ex Exchange) { seen <- ex }})
		defer sh.Close()
		front := httptest.NewServer(sh)
		defer front.Close()
		resp, err := http.Get(front.URL + "/")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("served request failed: %v %v", resp, err)
		}
		resp.Body.Close()
		if ex := <-seen; ex.Shadow.Status != 502 {
			t.Fatalf("shadow answer = %+v; want the forwarder's 502", ex.Shadow)
		}
	})
	t.Run("a handler that panics with another value is recorded, not re-raised", func(t *testing.T) {
		seen := make(chan Exchange, 1)
		sh := NewShadow(old, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug") }), ShadowOptions{Observe: func(ex Exchange) { seen <- ex }})
		defer sh.Close()
		rec := httptest.NewRecorder()
		sh.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		if ex := <-seen; ex.Shadow.Err != "panic: bug" || rec.Body.String() != "old" {
			t.Fatalf("shadow = %+v, served %q", ex.Shadow, rec.Body.String())
		}
	})
}

func TestShadowMethodsAndBodies(t *testing.T) {
	old := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "old:"+string(b))
	})
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.Header.Get(ShadowHeader)+" "+string(b))
	})
	for _, tc := range []struct {
		name       string
		opts       ShadowOptions
		method     string
		body       string
		wantShadow string // "" means no copy
		wantSkip   uint64
	}{
		{"a GET is copied with the shadow header", ShadowOptions{}, "GET", "", "GET 1 ", 0},
		{"a POST is not copied by default", ShadowOptions{}, "POST", "x=1", "", 0},
		{"an opted-in POST is copied with its body and the shadow header", ShadowOptions{Methods: []string{"post"}}, "POST", "x=1", "POST 1 x=1", 0},
		{"a body over the limit is not copied, and counted", ShadowOptions{Methods: []string{"GET", "POST"}, BodyLimit: 4}, "POST", "0123456789", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rig := newShadowRig(t, old, echo, tc.opts)
			if _, body := rig.do(t, tc.method, "/", tc.body); body != "old:"+tc.body {
				t.Fatalf("served %q", body)
			}
			// A GET afterwards is always copied: once it is observed, any copy of the first request
			// would have been observed before it (one queue).
			rig.do(t, "GET", "/after", "")
			first := <-rig.seen
			if tc.wantShadow == "" {
				if first.Path != "/after" {
					t.Fatalf("request was copied: %+v", first)
				}
			} else if got := string(first.Shadow.Body); got != tc.wantShadow {
				t.Fatalf("shadow answered %q; want %q", got, tc.wantShadow)
			}
			if st := rig.shadow.Stats(); st.Skipped != tc.wantSkip {
				t.Fatalf("skipped = %d; want %d", st.Skipped, tc.wantSkip)
			}
		})
	}
}

func TestShadowKeepsOnlyTheAnswerLimit(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 10000)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
	rig := newShadowRig(t, app, app, ShadowOptions{AnswerLimit: 100})
	if _, body := rig.do(t, "GET", "/", ""); len(body) != len(big) {
		t.Fatalf("client got %d bytes; want the whole %d", len(body), len(big))
	}
	ex := <-rig.seen
	if len(ex.Served.Body) != 100 || !ex.Served.Truncated || len(ex.Shadow.Body) != 100 || !ex.Shadow.Truncated {
		t.Fatalf("kept %d/%v and %d/%v bytes; want 100, truncated", len(ex.Served.Body), ex.Served.Truncated, len(ex.Shadow.Body), ex.Shadow.Truncated)
	}
}

func TestCloseStopsTheWorkersAndLaterRequestsAreStillServed(t *testing.T) {
	defer leakcheck.VerifyNone(t, goleak.IgnoreCurrent())
	block := make(chan struct{})
	defer close(block)
	started := make(chan struct{}, 1)
	sh := NewShadow(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "old") }),
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			started <- struct{}{}
			select { // a well-behaved app stops when its request's context ends
			case <-block:
			case <-r.Context().Done():
			}
		}), ShadowOptions{Workers: 3})
	sh.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	<-started
	sh.Close() // cancels the copy in flight and waits for every worker
	rec := httptest.NewRecorder()
	sh.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Body.String() != "old" || sh.Stats().Dropped != 1 {
		t.Fatalf("after Close: served %q, stats %+v", rec.Body.String(), sh.Stats())
	}
}

// BenchmarkShadowCost measures what shadowing adds to a served request (capture, header clone, queueing),
// against the same handler served directly. The copy's own work runs on the workers.
func BenchmarkShadowCost(b *testing.B) {
	body := []byte(`{"user":{"id":7,"name":"Ann"},"items":[1,2,3]}`)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	req := httptest.NewRequest("GET", "/api/user/7", nil)
	req.Header.Set("Accept", "application/json")
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			app.ServeHTTP(discard{h: http.Header{}}, req)
		}
	})
	b.Run("shadowed", func(b *testing.B) {
		sh := NewShadow(app, app, ShadowOptions{Queue: 1024, Workers: 2})
		defer sh.Close()
		b.ReportAllocs()
		for b.Loop() {
			sh.ServeHTTP(discard{h: http.Header{}}, req)
		}
		b.ReportMetric(float64(sh.Stats().Dropped)/float64(b.N), "dropped/op")
	})
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}
