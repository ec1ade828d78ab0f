package failure

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
