package relay

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The flush policy is one rule: what was written goes out before the next read of the app's body that
// would wait. A Body that knows when (WaitNotifier) is flushed exactly there, through waitFlusher. A Body
// that cannot say is taken to wait at every read of a streamed answer (unknown length, or an event
// stream): eachWriteFlusher flushes after every write and the head at once, which is
// httputil.ReverseProxy's policy (FlushInterval 0); its answer of known length is left to the server's
// buffering, again as ReverseProxy leaves it, so the HTTP direct path pays nothing for flushing.

// waitFlusher writes to w and flushes, when its flush is called (before a read that would wait), what was
// written since the last flush. The head waits for the first body bytes unless marked dirty: the server
// may still sniff a Content-Type from them. A failed flush is the client gone (err).
type waitFlusher struct {
	w     http.ResponseWriter
	dirty bool
	err   error
}

func (f *waitFlusher) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if n > 0 {
		f.dirty = true
	}
	return n, err
}

func (f *waitFlusher) flush() {
	if !f.dirty {
		return
	}
	f.dirty = false
	if err := http.NewResponseController(f.w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) && f.err == nil {
		f.err = err
	}
}

// eachWriteFlusher flushes after every write, and once from a timer started with the copy, so the head
// goes out at once; as in ReverseProxy, the head may instead leave with the first write when a body byte
// is already there, and then the server may sniff a missing Content-Type from it. Flush errors are left
// to the next write, as ReverseProxy leaves them.
type eachWriteFlusher struct {
	mu   sync.Mutex
	w    http.ResponseWriter
	t    *time.Timer
	done bool
}

func newEachWriteFlusher(w http.ResponseWriter) *eachWriteFlusher {
	f := &eachWriteFlusher{w: w}
	f.t = time.AfterFunc(0, f.delayed)
	return f
}

func (f *eachWriteFlusher) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.w.Write(p)
	_ = http.NewResponseController(f.w).Flush()
	return n, err
}

func (f *eachWriteFlusher) delayed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		_ = http.NewResponseController(f.w).Flush()
	}
}

// stop ends the timer's flush: none may run once the handler returned.
func (f *eachWriteFlusher) stop() {
	f.mu.Lock()
	f.done = true
	f.mu.Unlock()
	f.t.Stop()
}

var _ io.Writer = (*eachWriteFlusher)(nil)

// eventStream reports whether the Content-Type is text/event-stream (by mime.ParseMediaType, as
// ReverseProxy decides, but parsed only when the value can be one).
func eventStream(ct []string) bool {
	if len(ct) == 0 || len(ct[0]) < len("text/event-stream") {
		return false
	}
	if !containsFold(ct[0], "event-stream") {
		return false
	}
	base, _, _ := mime.ParseMediaType(ct[0])
	return base == "text/event-stream"
}

func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
