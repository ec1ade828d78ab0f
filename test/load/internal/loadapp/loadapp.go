// Package loadapp owns the apps the load tests put behind the gateway, and the exact answers they give, so
// that the tests can check every byte a client receives. The apps run in their own process
// (test/load/backend, built without -race so that they cost the machine little next to the gateway); the
// test hands them their listeners as inherited file descriptors from 3 on, in the order of Roles.
//
// The apps:
//
//	primary   /p/...     200 Payload("primary", path, size)
//	          /hold/...  counts the arrival, waits for the release gate, then 200 Payload("primary", path, 2000);
//	                     with mid=1 the head and the first half of the body are sent (and flushed) before
//	                     the arrival is counted, the rest after the release
//	          else       404 (so the gateway passes the request on to the delegate; a POST body is left unread)
//	delegate  POST       200 Echoed("delegate", body)
//	          else       200 Payload("delegate", path, size)
//	api       POST /echo 200 Echoed("api", body); else 200 Payload("api", path, size)
//	churn     PUT        200 Echoed("churn", body); else 200 Payload("churn", path, size). It closes its
//	                     keep-alive connections after ChurnIdle idle, and every ChurnCloseEvery-th answer
//	                     says Connection: close: the gateway's pooled connections go stale all the time.
//	control   GET /wait?n=N     answers "N arrived" once N held requests have arrived (blocks until then)
//	          GET /wait?n=N&gone=1  the same for held requests that ended because the gateway went away
//	                    (their context was cancelled: the gateway closed the connection)
//	          POST /release     lets every held request (and every later one) answer
//	          POST /close-idle  closes the apps' idle keep-alive connections, and keeps new ones from idling
//	          GET /stats        "primary=N delegate=N api=N churn=N": connections each app accepted so far
//
// size is the query's size parameter (default 100, at most 1 MiB); chunked=1 sends the body without
// Content-Length, in three flushed pieces.
package loadapp

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Roles names the apps, in the order of their listeners.
var Roles = []string{"primary", "delegate", "api", "churn", "control"}

// The churn app's connection turnover.
const (
	ChurnIdle       = 30 * time.Millisecond
	ChurnCloseEvery = 5
)

// Payload is the body an app answers for path: a line naming the app and the path (so that an answer
// delivered on the wrong connection is caught), then deterministic filler up to size bytes.
func Payload(app, path string, size int) []byte {
	head := "app=" + app + " path=" + path + "\n"
	b := make([]byte, max(size, len(head)))
	copy(b, head)
	// Byte i of the filler is 'a' + (i+len(path))%26: one copy from the repeated alphabet.
	off := (len(head) + len(path)) % 26
	copy(b[len(head):], alphabet[off:off+len(b)-len(head)])
	return b
}

// alphabet is a-z repeated past the largest size (1 MiB) plus one turn.
var alphabet = strings.Repeat("abcdefghijklmnopqrstuvwxyz", (1<<20)/26+2)

// Echoed is what an app answers to a POST to its echo path: a line naming the app, then the request body.
func Echoed(app string, body []byte) []byte {
	return append([]byte(app+" echo\n"), body...)
}

// Apps is the apps' shared state: the held requests and their release gate.
type Apps struct {
	mu      sync.Mutex
	arrived int
	gone    int           // held requests cancelled before their release
	changed chan struct{} // closed and replaced on every arrival and every cancellation
	release chan struct{}
	once    sync.Once
	servers []*http.Server
	opened  [4]atomic.Int64 // connections accepted per app (not control)
	churned atomic.Int64    // requests the churn app answered
}

// Serve serves the apps on listeners (one per role, in the order of Roles) until one of them fails.
func Serve(listeners []net.Listener) error {
	if len(listeners) != len(Roles) {
		return fmt.Errorf("loadapp: %d listeners, want %d", len(listeners), len(Roles))
	}
	a := &Apps{changed: make(chan struct{}), release: make(chan struct{})}
	handlers := []http.HandlerFunc{a.primary, a.delegate, a.api, a.churn, a.control}
	errc := make(chan error, len(listeners))
	for i, ln := range listeners {
		srv := &http.Server{Handler: handlers[i], ReadHeaderTimeout: time.Minute}
		if Roles[i] == "churn" {
			srv.IdleTimeout = ChurnIdle
		}
		if i < len(a.opened) {
			srv.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					a.opened[i].Add(1)
				}
			}
		}
		a.servers = append(a.servers, srv)
		go func() { errc <- fmt.Errorf("%s: %w", Roles[i], srv.Serve(ln)) }()
	}
	return <-errc
}

func querySize(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("size"))
	if err != nil || n < 0 || n > 1<<20 {
		return 100
	}
	return n
}

// send writes body with Content-Length, or chunked in three flushed pieces when the query asks.
func send(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.URL.Query().Get("chunked") != "1" {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
		return
	}
	third := len(body) / 3
	rc := http.NewResponseController(w)
	for _, part := range [][]byte{body[:third], body[third : 2*third], body[2*third:]} {
		if _, err := w.Write(part); err != nil {
			return
		}
		rc.Flush()
	}
}

func echo(w http.ResponseWriter, r *http.Request, app string) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	send(w, r, Echoed(app, body))
}

func (a *Apps) primary(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/p/"):
		send(w, r, Payload("primary", r.URL.Path, querySize(r)))
	case strings.HasPrefix(r.URL.Path, "/hold/"):
		body := Payload("primary", r.URL.Path, 2000)
		mid := r.URL.Query().Get("mid") == "1"
		if mid { // the head and the first half now, the rest on release
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.Write(body[:len(body)/2])
			http.NewResponseController(w).Flush()
		}
		a.count(&a.arrived)
		select {
		case <-a.release:
		case <-r.Context().Done():
			a.count(&a.gone)
			return
		}
		if mid {
			w.Write(body[len(body)/2:])
		} else {
			send(w, r, body)
		}
	default:
		http.Error(w, "primary: nothing at "+r.URL.Path, http.StatusNotFound)
	}
}

// count increments *counter and wakes the waiters.
func (a *Apps) count(counter *int) {
	a.mu.Lock()
	*counter++
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
}

func (a *Apps) delegate(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		echo(w, r, "delegate")
		return
	}
	send(w, r, Payload("delegate", r.URL.Path, querySize(r)))
}

func (a *Apps) api(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/echo" {
		echo(w, r, "api")
		return
	}
	send(w, r, Payload("api", r.URL.Path, querySize(r)))
}

func (a *Apps) churn(w http.ResponseWriter, r *http.Request) {
	if a.churned.Add(1)%ChurnCloseEvery == 0 {
		w.Header().Set("Connection", "close")
	}
	if r.Method == http.MethodPut {
		echo(w, r, "churn")
		return
	}
	send(w, r, Payload("churn", r.URL.Path, querySize(r)))
}

func (a *Apps) control(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/wait":
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		counter, what := &a.arrived, "arrived"
		if r.URL.Query().Get("gone") == "1" {
			counter, what = &a.gone, "gone"
		}
		for {
			a.mu.Lock()
			got, changed := *counter, a.changed
			a.mu.Unlock()
			if got >= n {
				fmt.Fprintf(w, "%d %s\n", got, what)
				return
			}
			select {
			case <-changed:
			case <-r.Context().Done():
				return
			}
		}
	case "/release":
		a.once.Do(func() { close(a.release) })
	case "/stats":
		fmt.Fprintf(w, "primary=%d delegate=%d api=%d churn=%d\n", a.opened[0].Load(), a.opened[1].Load(), a.opened[2].Load(), a.opened[3].Load())
	case "/close-idle":
		for _, srv := range a.servers[:len(a.opened)] {
			srv.SetKeepAlivesEnabled(false) // also closes the idle connections now
		}
	default:
		http.NotFound(w, r)
	}
}
