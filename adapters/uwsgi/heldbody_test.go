package uwsgi

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/switchyard/switchyard/adapters/adaptertest"
)

// An app that answers before reading a request body that a cascade holds in memory (the old app of a
// migration, given a POST the new app passed on) must not cost the next request on the client's
// keep-alive connection its context: waking the body copy with an expired read deadline on the client
// connection, when no read of it was pending, failed net/http's background read, which cancels the
// connection's context, and the next request was answered 200 with nothing.
func TestAnEarlyAnswerToAHeldBodyLeavesTheNextRequestAlone(t *testing.T) {
	release := make(chan struct{})
	app := fakeUWSGI(t, func(c net.Conn, vars map[string]string, _ io.Reader) {
		if vars["REQUEST_METHOD"] == "POST" {
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nposted")
			<-release // neither read the body nor close: the copy stays blocked writing to us
			return
		}
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\ngot")
	})
	t.Cleanup(func() { close(release) }) // runs before fakeUWSGI's cleanup, which waits for serve
	h, _ := adaptertest.Build(t, Kind(), app, "")
	// As a cascade does: read the client's body to its end and hand the app an in-memory copy, which
	// GetBody marks as such.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		r2 := r.Clone(r.Context())
		r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		h.ServeHTTP(w, r2)
	}))
	t.Cleanup(srv.Close)

	c := srv.Client()
	for i := range 20 {
		resp, err := c.Post(srv.URL+"/form", "application/octet-stream", bytes.NewReader(make([]byte, 1<<20)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "posted" {
			t.Fatalf("round %d: POST got %d %q", i, resp.StatusCode, b)
		}
		resp, err = c.Get(srv.URL + "/next")
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "got" {
			t.Fatalf("round %d: the GET after the POST got %d %q, want the app's answer", i, resp.StatusCode, b)
		}
	}
}
