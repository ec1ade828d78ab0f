package failure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/switchyard/switchyard/internal/spool"
	"github.com/switchyard/switchyard/reqinfo"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestStatusAndAnswer(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		err      error
		ctx      context.Context
		status   int // 499: no answer
		recorded bool
		log      string
	}{
		{"the body limit is 413", fmt.Errorf("x: %w", &http.MaxBytesError{Limit: 5}), nil, 413, true, "upstream request failed"},
		{"a silent client is 408", fmt.Errorf("%w: %w", ErrClientTimeout, timeoutErr{}), nil, 408, false, "request body timed out"},
		{"a client that left gets nothing", errors.New("write: broken pipe"), cancelled, 499, true, "upstream request failed"},
		{"a malformed client body is 400", ClientBody(errors.New("bad chunk")), nil, 400, false, "bad request body"},
		{"framing the front door refused is 400", fmt.Errorf("%w: bare LF", ErrBadRequestBody), nil, 400, false, "bad request body"},
		{"variables the protocol cannot carry are 400", fmt.Errorf("%w: NUL", ErrBadVars), nil, 400, false, "request refused"},
		{"variables too large are 431", fmt.Errorf("%w: 70000 bytes", ErrVarsTooLarge), nil, 431, false, "request refused"},
		{"the gateway's storage is 500, even under a client body mark", ClientBody(fmt.Errorf("%w: disk full", spool.ErrStorage)), nil, 500, false, "spooling the request body failed"},
		{"no instance is 503", fmt.Errorf("%w: 2 down", ErrNoInstance), nil, 503, false, "no instance available"},
		{"a deadline is 504", fmt.Errorf("head: %w", context.DeadlineExceeded), nil, 504, true, "upstream request failed"},
		{"a net timeout is 504", timeoutErr{}, nil, 504, true, "upstream request failed"},
		{"a refused connection is 502", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), nil, 502, true, "upstream request failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/p", nil)
			if tt.ctx != nil {
				r = r.WithContext(tt.ctx)
			}
			r, _ = reqinfo.Attach(r)
			if got := Status(r, tt.err); got != tt.status {
				t.Fatalf("Status = %d, want %d", got, tt.status)
			}
			var logs bytes.Buffer
			w := httptest.NewRecorder()
			Answer(w, r, slog.New(slog.NewTextHandler(&logs, nil)), "app", "127.0.0.1:1", tt.err)
			if tt.status == StatusClientClosedRequest {
				if w.Body.Len() != 0 || w.Code != 200 {
					t.Fatalf("a client that left was answered %d %q", w.Code, w.Body)
				}
			} else if w.Code != tt.status {
				t.Fatalf("answered %d", w.Code)
			}
			if got := len(reqinfo.From(r.Context()).Snapshot().Failures) == 1; got != tt.recorded {
				t.Fatalf("recorded %v, want %v", got, tt.recorded)
			}
			if !strings.Contains(logs.String(), tt.log) || !strings.Contains(logs.String(), "app=app") {
				t.Fatalf("log %q, want %q", logs.String(), tt.log)
			}
		})
	}
}

// fallBackWriter is a FallBacker that takes over when take is set, wrapped once (taking is reached
// through Unwrap, as a cascade's writer is behind a per-app wrapper).
type fallBackWriter struct {
	http.ResponseWriter
	take    bool
	offered []error
}

func (f *fallBackWriter) FallBack(_, _ string, err error) bool {
	f.offered = append(f.offered, err)
	return f.take
}

type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestAnswerOffersOnlyUnsentFailuresToAFallBacker(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	missing := &net.OpError{Op: "dial", Net: "unix", Err: syscall.ENOENT}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		err      error
		ctx      context.Context
		take     bool
		offered  bool
		status   int // 0: Answer wrote nothing
		recorded bool
	}{
		{"a refused connection is offered and taken over", fmt.Errorf("uwsgi connecting: %w", refused), nil, true, true, 0, true},
		{"a missing unix socket is offered and taken over", missing, nil, true, true, 0, true},
		{"no instance is offered and taken over, and left to the balancer's counts", fmt.Errorf("%w: all down", ErrNoInstance), nil, true, true, 0, false},
		{"a dial timeout is offered", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, nil, true, true, 0, true},
		{"an unsent failure the writer declines is answered", refused, nil, false, true, 502, true},
		{"a reset after the connection opened is not offered", reset, nil, true, false, 502, true},
		{"a timeout waiting for the answer is not offered", fmt.Errorf("head: %w", context.DeadlineExceeded), nil, true, false, 504, true},
		{"a client that left is not offered", refused, cancelled, true, false, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/p", strings.NewReader("x"))
			if tt.ctx != nil {
				r = r.WithContext(tt.ctx)
			}
			r, _ = reqinfo.Attach(r)
			rec := httptest.NewRecorder()
			fb := &fallBackWriter{ResponseWriter: rec, take: tt.take}
			var logs bytes.Buffer
			Answer(wrapper{fb}, r, slog.New(slog.NewTextHandler(&logs, nil)), "new", "127.0.0.1:1", tt.err)
			if got := len(fb.offered) == 1; got != tt.offered {
				t.Fatalf("offered %v, want %v", fb.offered, tt.offered)
			}
			if tt.status == 0 {
				if rec.Body.Len() != 0 || rec.Code != 200 || rec.Header().Get("Content-Type") != "" {
					t.Fatalf("Answer wrote %d %q", rec.Code, rec.Body)
				}
			} else if rec.Code != tt.status {
				t.Fatalf("answered %d, want %d", rec.Code, tt.status)
			}
			if tt.offered && tt.take && logs.Len() != 0 {
				t.Fatalf("a failure taken over was logged: %s", logs.String())
			}
			if got := len(reqinfo.From(r.Context()).Snapshot().Failures) == 1; got != tt.recorded {
				t.Fatalf("recorded %v, want %v", got, tt.recorded)
			}
		})
	}
}

func TestUnsent(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, true},
		{fmt.Errorf("instance 127.0.0.1:1: %w", &net.OpError{Op: "dial", Net: "unix", Err: syscall.ENOENT}), true},
		{fmt.Errorf("%w: breaker open", ErrNoInstance), true},
		{&net.OpError{Op: "write", Net: "tcp", Err: syscall.EPIPE}, false},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{io.ErrUnexpectedEOF, false},
		{context.DeadlineExceeded, false},
		{errors.New("dial tcp: connection refused"), false}, // text is not proof
	} {
		if got := Unsent(tt.err); got != tt.want {
			t.Errorf("Unsent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// quietOutage is a no-instance error whose outage log says whether its 503 is logged.
type quietOutage struct {
	log     bool
	skipped int
}

func (quietOutage) Error() string          { return "no available instance (of 2: 2 ejected after failures)" }
func (quietOutage) Is(target error) bool   { return target == ErrNoInstance }
func (q quietOutage) LogLine() (bool, int) { return q.log, q.skipped }

// A 503 for no instance is logged as its outage says (upstream's NoInstanceError.LogLine): not at all,
// or with the number of 503s left out since the last line; the client gets its 503 either way.
func TestAnOutagesLineIsWrittenAsItsLogSays(t *testing.T) {
	for _, tc := range []struct {
		q    quietOutage
		want string
	}{{quietOutage{false, 0}, ""}, {quietOutage{true, 0}, "no instance available"}, {quietOutage{true, 41}, "not_logged_since=41"}} {
		r, _ := reqinfo.Attach(httptest.NewRequest("GET", "/p", nil))
		var logs bytes.Buffer
		w := httptest.NewRecorder()
		Answer(w, r, slog.New(slog.NewTextHandler(&logs, nil)), "app", "", tc.q)
		if w.Code != 503 {
			t.Fatalf("%+v: answered %d", tc.q, w.Code)
		}
		if tc.want == "" && logs.Len() != 0 || !strings.Contains(logs.String(), tc.want) {
			t.Errorf("%+v: logged %q; want %q", tc.q, logs.String(), tc.want)
		}
	}
}
