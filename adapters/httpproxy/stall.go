package httpproxy

import (
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/adapters/httpproxy/internal/h1"
)

// stallGuard puts the read_timeout stall limit on the response bodies of a net/http Transport (the h1
// fast path has its own, on the connection's read deadline). Each request gets a cancellable context; a
// timer, pushed back by body reads at most every h1.StallSlack(limit), cancels it when the app sends
// nothing for limit: the Transport then aborts the body read and closes the connection (an HTTP/2
// stream is reset instead). Upgraded connections (101) are not watched.
type stallGuard struct {
	rt    http.RoundTripper
	limit time.Duration
}

// guard wraps rt with the stall limit; limit <= 0 returns rt itself.
func guard(rt http.RoundTripper, limit time.Duration) http.RoundTripper {
	if limit <= 0 {
		return rt
	}
	return &stallGuard{rt: rt, limit: limit}
}

func (g *stallGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := g.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// An upgraded connection is not watched: it may idle as long as its peers like. Its context
		// ends when the tunnel is closed (or with the client's request).
		if rwc, ok := resp.Body.(io.ReadWriteCloser); ok {
			u := &upgradedConn{ReadWriteCloser: rwc, cancel: cancel}
			resp.Body = u
			if _, ok := rwc.(interface{ CloseWrite() error }); ok {
				// ReverseProxy half-closes the app's side when the client ends its side of the tunnel;
				// the wrapper must not hide that the connection can.
				resp.Body = halfClosableConn{u}
			}
			return resp, nil
		}
		cancel(nil)
		return resp, nil
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		cancel(nil)
		return resp, nil
	}
	w := &watchedBody{rc: resp.Body, limit: g.limit, slack: h1.StallSlack(g.limit), cancel: cancel, renewed: time.Now()}
	w.timer = time.AfterFunc(g.limit+w.slack, w.expire)
	resp.Body = w
	return resp, nil
}

// upgradedConn is the tunnel of a 101 answer; closing it releases the request's context.
type upgradedConn struct {
	io.ReadWriteCloser
	cancel context.CancelCauseFunc
}

func (u *upgradedConn) Close() error {
	err := u.ReadWriteCloser.Close()
	u.cancel(nil)
	return err
}

// halfClosableConn is an upgradedConn whose connection can be half-closed.
type halfClosableConn struct{ *upgradedConn }

// CloseWrite half-closes the app's connection: the client finished sending on the tunnel.
func (h halfClosableConn) CloseWrite() error {
	return h.ReadWriteCloser.(interface{ CloseWrite() error }).CloseWrite()
}

// watchedBody is a response body under a stall watchdog. Read and Close must not be called concurrently
// (as for any response body); expire runs on the timer's goroutine.
type watchedBody struct {
	rc      io.ReadCloser
	limit   time.Duration
	slack   time.Duration
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	renewed time.Time
	stalled atomic.Bool
}

func (w *watchedBody) expire() {
	w.stalled.Store(true)
	w.cancel(&h1.StallError{Limit: w.limit})
}

func (w *watchedBody) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(w.renewed) >= w.slack {
		w.renewed = now
		w.timer.Reset(w.limit + w.slack)
	}
	n, err := w.rc.Read(p)
	switch {
	case err == io.EOF:
		w.timer.Stop()
	case err != nil && w.stalled.Load():
		err = &h1.StallError{Limit: w.limit}
	}
	return n, err
}

func (w *watchedBody) Close() error {
	w.timer.Stop()
	err := w.rc.Close()
	w.cancel(nil)
	return err
}

// proxyLog routes httputil.ReverseProxy's own log lines (a failed body copy, a failed upgrade tunnel) to
// the app's slog logger, one line each naming the app and the upstream, instead of the process's default
// logger on stderr.
func proxyLog(logger *slog.Logger, app, upstream string) *log.Logger {
	return log.New(proxyLogWriter{logger: logger, app: app, upstream: upstream}, "", 0)
}

type proxyLogWriter struct {
	logger        *slog.Logger
	app, upstream string
}

func (w proxyLogWriter) Write(p []byte) (int, error) {
	cause := strings.TrimSpace(string(p))
	msg := "upstream proxy error"
	if c, ok := strings.CutPrefix(cause, "httputil: ReverseProxy read error during body copy: "); ok {
		cause = c
		msg = "upstream response aborted: app failed mid-body"
		if strings.Contains(c, "app stalled mid-body") {
			msg = "upstream response aborted: app stalled mid-body"
		}
	}
	w.logger.LogAttrs(context.Background(), slog.LevelWarn, msg,
		slog.String("app", w.app), slog.String("upstream", w.upstream), slog.String("cause", cause))
	return len(p), nil
}
