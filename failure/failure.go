// Package failure owns the gateway's one vocabulary for a request its app could not serve: the sentinel
// errors, the one table from an error to the status the client gets, and Answer, the one function that
// answers such a request, logs one line naming the app, the upstream and the cause, and records the
// failure for metrics. The front door (router, middleware) and every adapter import it; it sits on the
// ground floor and imports nothing of the gateway's but reqinfo and the spool's storage error.
package failure

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/switchyard/switchyard/internal/spool"
	"github.com/switchyard/switchyard/reqinfo"
)

// StatusClientClosedRequest is the status logged (never sent) when the client went away first, as nginx
// logs 499.
const StatusClientClosedRequest = 499

var (
	// ErrClientTimeout wraps the error of a request body read that timed out because the client went
	// silent (middleware.ClientDeadlines): 408.
	ErrClientTimeout = errors.New("client sent no request body data in time")
	// ErrBadRequestBody wraps the error of a request body read that failed because the client's body
	// framing was malformed (a bad chunk size, a bare LF in a chunk line, a forbidden trailer), or any
	// other failure reading the client's body that ClientBody marks: 400, the client's fault, not 502.
	ErrBadRequestBody = errors.New("malformed request body")
	// ErrVarsTooLarge is wrapped when a request's variables cannot be framed by the app's protocol
	// (uwsgi's 16-bit size): 431.
	ErrVarsTooLarge = errors.New("request variables too large for the protocol")
	// ErrBadVars is wrapped when the app's protocol cannot carry a request's variables at all (a NUL in
	// SCGI): 400.
	ErrBadVars = errors.New("request variables cannot be encoded")
	// ErrNoInstance is wrapped when every instance of a balanced app is down, ejected or open: 503.
	ErrNoInstance = errors.New("no instance available")
)

// ClientBody marks err as a failure to read the client's request body (as opposed to talking to the
// app). Unless a more specific rule applies (the body limit: 413, a silent client: 408, a client that
// left: 499), the client gets 400.
func ClientBody(err error) error {
	if err == nil {
		return nil
	}
	return &clientBodyError{err}
}

type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string        { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error        { return e.err }
func (e *clientBodyError) Is(target error) bool { return target == ErrBadRequestBody }

// Status maps err, the failure of a request before any response byte was sent, to the status the client
// gets; StatusClientClosedRequest means it gets none. The rules, first match wins:
//
//	413  the request body hit the gateway's limit (*http.MaxBytesError)
//	408  the client stalled its body (ErrClientTimeout)
//	499  the client went away (the request's context was cancelled)
//	500  the gateway could not hold the body (spool.ErrStorage)
//	400  the client's body framing was malformed or its body could not be read (ErrBadRequestBody,
//	     ClientBody), or the protocol cannot carry the request's variables (ErrBadVars)
//	431  the request's variables are too large for the protocol (ErrVarsTooLarge)
//	503  no instance of the app is available (ErrNoInstance)
//	504  a timeout (context.DeadlineExceeded, a net.Error whose Timeout is true)
//	502  everything else: refused or reset connections, an app that closed early, garbage on the wire
func Status(r *http.Request, err error) int {
	var mbe *http.MaxBytesError
	var ne net.Error
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrClientTimeout):
		return http.StatusRequestTimeout
	case errors.Is(r.Context().Err(), context.Canceled):
		return StatusClientClosedRequest
	case errors.Is(err, spool.ErrStorage):
		return http.StatusInternalServerError
	case errors.Is(err, ErrBadRequestBody), errors.Is(err, ErrBadVars):
		return http.StatusBadRequest
	case errors.Is(err, ErrVarsTooLarge):
		return http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, ErrNoInstance):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

// Unsent reports whether err, the failure of a request before any response byte, provably happened
// before any byte of the request reached the app, so that another app may serve the request without the
// first one ever having seen it: the connection could not be opened (a dial error: connection refused, a
// missing unix socket, no route to the host, a dial timeout) or no instance was available (ErrNoInstance).
// Anything after a connection was opened (a reset or an early close, a timeout waiting for the answer,
// garbage on the wire, a failed TLS handshake) is not Unsent: the app may have read the request and acted
// on it.
//
// Adapters keep the dialer's *net.OpError (Op "dial") in the error chain (wrapping with %w), which is what
// Unsent looks for. A dial error from Go's http.Transport may follow a first attempt on a reused
// connection that broke before any answer: for a request with an unsafe method only when nothing of it
// had been written; for GET, HEAD, OPTIONS and TRACE (which HTTP lets a client repeat) also after it was
// written, so for those "never reached" means "never answered, and safe to send again".
func Unsent(err error) bool {
	if errors.Is(err, ErrNoInstance) {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// A FallBacker is a ResponseWriter that can have a request served by another app when its app was never
// reached: a delegate.Cascade whose app allows it (delegate.App.FallBack). Answer offers it every Unsent
// failure of a request whose client is still there, finding it in w or in the writers w wraps (through
// an Unwrap() http.ResponseWriter method, as http.ResponseController does).
type FallBacker interface {
	// FallBack reports whether the writer takes the request over after app (at upstream) failed with err,
	// an Unsent failure. When it does, Answer writes nothing and logs nothing: the taker logs the one line
	// of the request's fall back, naming the app, the upstream and the cause.
	FallBack(app, upstream string, err error) bool
}

// maxUnwrap bounds the walk through wrapped writers (a cycle of Unwrap methods must not hang a request).
const maxUnwrap = 32

// fallBacker returns the first FallBacker among w and the writers it wraps, or nil.
func fallBacker(w http.ResponseWriter) FallBacker {
	for range maxUnwrap {
		switch x := w.(type) {
		case FallBacker:
			return x
		case interface{ Unwrap() http.ResponseWriter }:
			w = x.Unwrap()
		default:
			return nil
		}
	}
	return nil
}

// Answer answers a request that could not be served because of err (before any response byte was sent)
// with Status's status, logs one line naming the app, the upstream and the cause (Info for what the
// client caused, Error for the gateway's own storage and for no instance at all, Warn otherwise), and
// records the failure in the request's reqinfo, which metrics count by cause, unless the client's body,
// the gateway's storage or the lack of any instance was at fault (no app connection failed). A client that went away gets no answer.
//
// An Unsent failure is first offered to the FallBacker w holds, if any: when it takes the request over,
// Answer only records the failure (as above) and the FallBacker has another app serve the request.
func Answer(w http.ResponseWriter, r *http.Request, logger *slog.Logger, app, upstream string, err error) {
	if Unsent(err) && r.Context().Err() == nil {
		if fb := fallBacker(w); fb != nil && fb.FallBack(app, upstream, err) {
			if !errors.Is(err, ErrNoInstance) { // as below: the balancer counts why no instance was tried
				reqinfo.From(r.Context()).Failed(app, upstream, err)
			}
			return
		}
	}
	status := Status(r, err)
	level, msg := slog.LevelWarn, "upstream request failed"
	record := true
	switch status {
	case StatusClientClosedRequest, http.StatusRequestEntityTooLarge:
		level = slog.LevelInfo
	case http.StatusRequestTimeout:
		level, msg, record = slog.LevelInfo, "request body timed out", false
	case http.StatusBadRequest, http.StatusRequestHeaderFieldsTooLarge:
		level, msg, record = slog.LevelInfo, "bad request body", false
		if status != http.StatusBadRequest || errors.Is(err, ErrBadVars) {
			msg = "request refused"
		}
	case http.StatusInternalServerError:
		level, msg, record = slog.LevelError, "spooling the request body failed", false
	case http.StatusServiceUnavailable:
		// The balancer counts why each instance was skipped; no one instance failed this request.
		level, msg, record = slog.LevelError, "upstream request failed: no instance available", false
	}
	if logger == nil {
		logger = slog.Default()
	}
	if record {
		reqinfo.From(r.Context()).Failed(app, upstream, err)
	}
	log, skipped := true, 0
	var outage interface{ LogLine() (bool, int) }
	if status == http.StatusServiceUnavailable && errors.As(err, &outage) {
		log, skipped = outage.LogLine() // the start of an outage, then a line now and then: not each 503
	}
	if log {
		attrs := []slog.Attr{slog.String("app", app), slog.String("upstream", upstream), slog.Int("status", status),
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("cause", err.Error())}
		if skipped > 0 {
			attrs = append(attrs, slog.Int("not_logged_since", skipped))
		}
		logger.LogAttrs(r.Context(), level, msg, attrs...)
	}
	if status == StatusClientClosedRequest {
		return
	}
	http.Error(w, http.StatusText(status), status)
}
