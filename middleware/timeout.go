package middleware

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// ErrHeaderTimeout is the cause of the request context's cancellation when Timeout answered 504.
var ErrHeaderTimeout = errors.New("no response header within the timeout")

// Timeout returns middleware that answers 504 when the application has not started its response (written
// the header, a body byte, or flushed) within d, and cancels the request's context (cause
// ErrHeaderTimeout) so the adapter stops waiting for its app. Once the response has started, the deadline
// is off: a long download or a server-sent-events stream is never cut.
//
// This is what http.TimeoutHandler gets wrong for a gateway: TimeoutHandler buffers the whole response and
// bounds the whole request, so it breaks streaming and flushing, and cuts long responses. Here the
// handler keeps running in the request's goroutine and nothing is buffered; writes the handler makes after
// the 504 fail with http.ErrHandlerTimeout. The connection is released when the handler returns, which a
// handler honouring its context does at once. Until the response starts, the handler edits a private
// header map, copied out when it writes the header, so the 504 never carries half of an app's headers.
func Timeout(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithCancelCause(r.Context())
			defer cancel(nil)
			tw := &headerTimeoutWriter{w: w, h: http.Header{}}
			t := time.AfterFunc(d, func() {
				tw.mu.Lock()
				defer tw.mu.Unlock()
				if tw.started || tw.finished {
					return
				}
				tw.timedOut = true
				cancel(ErrHeaderTimeout)
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.WriteHeader(http.StatusGatewayTimeout)
				_, _ = w.Write([]byte("504 gateway timeout: the application did not answer in time\n"))
				_ = http.NewResponseController(w).Flush()
			})
			defer func() {
				t.Stop()
				tw.mu.Lock()
				tw.finished = true
				tw.mu.Unlock()
			}()
			next.ServeHTTP(tw, r.WithContext(ctx))
		})
	}
}

// headerTimeoutWriter serialises the handler's writes with the timer's 504. started/timedOut/finished only ever
// turn true, under mu.
type headerTimeoutWriter struct {
	mu       sync.Mutex
	w        http.ResponseWriter
	h        http.Header
	started  bool
	timedOut bool
	finished bool
}

func (tw *headerTimeoutWriter) Header() http.Header {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.started {
		return tw.w.Header()
	}
	return tw.h
}

func (tw *headerTimeoutWriter) copyHeader() {
	dst := tw.w.Header()
	for k, vv := range tw.h {
		dst[k] = vv
	}
}

func (tw *headerTimeoutWriter) WriteHeader(code int) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.writeHeaderLocked(code)
}

func (tw *headerTimeoutWriter) writeHeaderLocked(code int) {
	if tw.timedOut || tw.started {
		if tw.started && !tw.timedOut {
			tw.w.WriteHeader(code) // let net/http report the superfluous call
		}
		return
	}
	tw.copyHeader()
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		tw.w.WriteHeader(code)
		return
	}
	tw.started = true
	tw.w.WriteHeader(code)
}

func (tw *headerTimeoutWriter) Write(b []byte) (int, error) {
	tw.mu.Lock()
	if tw.timedOut {
		tw.mu.Unlock()
		return 0, http.ErrHandlerTimeout
	}
	if !tw.started {
		tw.writeHeaderLocked(http.StatusOK)
	}
	tw.mu.Unlock()
	// Once started the timer never touches w again, so the body is written without the lock.
	return tw.w.Write(b)
}

func (tw *headerTimeoutWriter) Flush() {
	tw.mu.Lock()
	if tw.timedOut {
		tw.mu.Unlock()
		return
	}
	if !tw.started {
		tw.writeHeaderLocked(http.StatusOK)
	}
	tw.mu.Unlock()
	_ = http.NewResponseController(tw.w).Flush()
}

func (tw *headerTimeoutWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	if tw.timedOut {
		return nil, nil, http.ErrHandlerTimeout
	}
	tw.copyHeader()
	tw.started = true
	return http.NewResponseController(tw.w).Hijack()
}

func (tw *headerTimeoutWriter) Unwrap() http.ResponseWriter { return tw.w }

func buildTimeout(p *params, _ BuildEnv) (func(http.Handler) http.Handler, error) {
	if _, err := p.Required("header", "a duration such as 30s"); err != nil {
		return nil, err
	}
	d, err := p.Duration("header", 0)
	if err != nil {
		return nil, err
	}
	return Timeout(d), nil
}
