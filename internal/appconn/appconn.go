// Package appconn owns what every client connection to an app needs, written once for
// the HTTP/1.1 client (adapters/httpproxy/internal/h1), FastCGI and the uwsgi/SCGI wire (cgiwire):
// cancellation that later deadline changes cannot undo, the stall limit on a response body, and the idle
// keep-alive pool (Pool).
//
// Cancellation: a request's context.AfterFunc calls Expire, which makes every blocked and later read and
// write fail at once. A deadline set afterwards would lift that; Keep re-expires the connection when the
// context is already done. The context's error is set before its AfterFunc runs, so either the AfterFunc
// runs after the new deadline, or Keep sees the error: no interleaving leaves a cancelled request's
// connection blocked.
//
// Stall limit: while a body streams, the read deadline is kept at least Limit ahead. Renewing it on every
// read would cost a timer update per read, so Stall renews it when it is older than Slack(Limit) (at most
// 250ms): an app is cut after between Limit and Limit+Slack of silence.
package appconn

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
)

// expired is a deadline in the past: it interrupts blocked I/O at once.
var expired = time.Unix(1, 0)

// Expire makes every blocked and later read and write on c fail at once.
func Expire(c net.Conn) { _ = c.SetDeadline(expired) }

// Keep re-expires c when ctx is done: call it after setting any deadline on a connection whose
// cancellation Expire carries.
func Keep(ctx context.Context, c net.Conn) {
	if ctx != nil && ctx.Err() != nil {
		Expire(c)
	}
}

// SetReadDeadline sets c's read deadline to d without undoing a cancellation (Keep).
func SetReadDeadline(ctx context.Context, c net.Conn, d time.Time) {
	_ = c.SetReadDeadline(d)
	Keep(ctx, c)
}

// Slack is how stale a stall deadline may grow before a read renews it.
func Slack(limit time.Duration) time.Duration { return min(limit/8, 250*time.Millisecond) }

// StallError is the failure of a response body read after the app sent nothing for Limit. It is a
// net.Error whose Timeout is true (answered 504 before any byte, an aborted stream after).
type StallError struct{ Limit time.Duration }

func (e *StallError) Error() string {
	return "app stalled mid-body: no byte for read_timeout " + e.Limit.String()
}

// Timeout reports true: a stall is a timeout.
func (e *StallError) Timeout() bool { return true }

// Temporary reports true, as net.Error timeouts do.
func (e *StallError) Temporary() bool { return true }

// Stall keeps the stall limit of one body read from one connection. The zero value (Limit 0) sets no
// deadline. It is used by the goroutine reading the body only.
type Stall struct {
	// Limit is the silence allowed; 0: none.
	Limit   time.Duration
	renewed time.Time
}

// Start begins the limit with a deadline Limit (plus slack) from now.
func (s *Stall) Start(ctx context.Context, c net.Conn) {
	if s.Limit <= 0 {
		return
	}
	s.renewed = time.Now()
	SetReadDeadline(ctx, c, s.renewed.Add(s.Limit+Slack(s.Limit)))
}

// Renew is called before each read: it moves the read deadline Limit (plus slack) ahead when the last
// move is older than the slack.
func (s *Stall) Renew(ctx context.Context, c net.Conn) {
	if s.Limit <= 0 {
		return
	}
	if now := time.Now(); now.Sub(s.renewed) >= Slack(s.Limit) {
		s.renewed = now
		SetReadDeadline(ctx, c, now.Add(s.Limit+Slack(s.Limit)))
	}
}

// Stalled reports whether err, from a read under the limit, is the limit passing (and not the request's
// cancellation or deadline, which Expire also turns into a deadline error).
func (s *Stall) Stalled(ctx context.Context, err error) bool {
	return s.Limit > 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded) && (ctx == nil || ctx.Err() == nil)
}
