package adapters

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/switchyard/switchyard/reqinfo"
)

// StatusClientClosedRequest is the status logged (never sent) when the client went away first, as nginx
// logs 499.
const StatusClientClosedRequest = 499

// ErrClientTimeout wraps the error of a request body read that timed out because the client went silent
// (see middleware.ClientDeadlines); it maps to 408.
var ErrClientTimeout = errors.New("client sent no request body data in time")

// ErrBadRequestBody wraps the error of a request body read that failed because the client's body framing
// was malformed (a bad chunk size, a bare LF in a chunk line, a forbidden trailer): the router's front door
// wraps such errors (see router.Sanitize); it maps to 400, the client's fault, not 502.
var ErrBadRequestBody = errors.New("malformed request body")

// ErrorStatus maps an error from talking to an application to the status the client gets: 413 when the
// request body hit the gateway's limit, 400 when its framing was malformed, 408 when the client stalled its body, 504 for timeouts, 499 when the client cancelled (log only), 502 for
// everything else (refused or reset connections, an app that closed early, garbage on the wire).
func ErrorStatus(r *http.Request, err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrClientTimeout):
		return http.StatusRequestTimeout
	case r.Context().Err() == context.Canceled:
		return StatusClientClosedRequest
	case errors.Is(err, ErrBadRequestBody):
		return http.StatusBadRequest
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// Fail answers a request that could not be served because of err (before any response byte was sent) and
// logs one line naming the app, the upstream and the cause, and records the failure in the request's
// reqinfo. A cancelled client gets no answer.
func Fail(w http.ResponseWriter, r *http.Request, logger *slog.Logger, app, upstream string, err error) {
	status := ErrorStatus(r, err)
	level := slog.LevelWarn
	if status == StatusClientClosedRequest {
		level = slog.LevelInfo
	}
	if logger == nil {
		logger = slog.Default()
	}
	reqinfo.From(r.Context()).Failed(app, upstream, err) // read by metrics (upstream errors by cause)
	logger.LogAttrs(r.Context(), level, "upstream request failed",
		slog.String("app", app), slog.String("upstream", upstream), slog.Int("status", status),
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("cause", err.Error()))
	if status == StatusClientClosedRequest {
		return
	}
	http.Error(w, http.StatusText(status), status)
}
