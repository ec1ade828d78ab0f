package delegate

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/switchyard/switchyard/failure"
	"github.com/switchyard/switchyard/reqinfo"
)

// unreachable is an app whose connection cannot be opened: it answers a dial error with failure.Answer,
// after reading readFirst bytes of the body (an adapter that touched the stream before failing).
func unreachable(readFirst int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if readFirst > 0 {
			_, _ = io.ReadFull(r.Body, make([]byte, readFirst))
		}
		r.Body.Close() // as http.Transport does on a failed dial
		failure.Answer(w, r, nil, "new", "127.0.0.1:1", fmt.Errorf("connecting: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))
	})
}

func TestCascadeFallsBackOnlyWhenTheAppNeverReceivedTheRequest(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	tests := []struct {
		name      string
		first     http.Handler
		fallBack  bool
		bodyLimit int64
		apps      int
		status    int
		fromOld   bool // the client gets the old app's answer to the whole body
		unreached bool // reqinfo records the first app as unreached
	}{
		{"a held body is re-sent whole", unreachable(0), true, 0, 2, 200, true, true},
		{"a held body is re-sent whole even after the app read its copy", unreachable(10), true, 0, 2, 200, true, true},
		{"the client's stream, untouched, goes to the next app", unreachable(0), true, 100, 2, 200, true, true},
		{"the client's stream, once read from, is not re-sent", unreachable(10), true, 100, 2, 502, false, false},
		{"without FallBack the failure is answered", unreachable(0), false, 0, 2, 502, false, false},
		{"the last app's failure is final", unreachable(0), true, 0, 1, 502, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var unreached atomic.Value
			apps := []App{{Name: "new", Handler: tc.first, FallBack: tc.fallBack}, {Name: "old", Handler: bodyHash("old", 200)}}[:tc.apps]
			c := &Cascade{Apps: apps, BodyLimit: tc.bodyLimit}
			srv := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				r, info := reqinfo.Attach(r)
				c.ServeHTTP(w, r)
				// Stored before the handler returns, so before the server flushes the small answer.
				unreached.Store(info.Snapshot().Unreached)
			}))
			resp, err := http.Post(srv.URL+"/x", "text/plain", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := "Bad Gateway\n"
			if tc.fromOld {
				want = fmt.Sprintf("old %x %d", sha256.Sum256(body), len(body))
			}
			if resp.StatusCode != tc.status || string(got) != want {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, got, tc.status, want)
			}
			if got := unreached.Load() == "new"; got != tc.unreached {
				t.Fatalf("reqinfo's Unreached is %q, want the first app: %v", unreached.Load(), tc.unreached)
			}
		})
	}
}
