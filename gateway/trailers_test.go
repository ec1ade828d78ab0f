package gateway

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
)

// TestRequestTrailersReachTheApp checks that a client's request trailers arrive with their values, for
// a single app and through a cascade (which holds the body for re-sending), and that a forwarding
// header sent as a trailer by an untrusted client does not.
func TestRequestTrailersReachTheApp(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "body=%s sum=%q xff-trailer=%q", b, r.Trailer.Get("X-Sum"), r.Trailer.Get("X-Forwarded-For"))
	}))
	defer app.Close()
	missing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.NotFound(w, r)
	}))
	defer missing.Close()
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"one app", map[string]string{"GATEWAY_PRIMARY": app.URL}},
		{"a cascade (body held for re-sending), answered by its first app", map[string]string{"GATEWAY_PRIMARY": app.URL, "GATEWAY_DELEGATES": missing.URL}},
		{"a cascade, answered by its last app after a 404", map[string]string{"GATEWAY_PRIMARY": missing.URL, "GATEWAY_DELEGATES": app.URL}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(tt.env, nil)
			if err != nil {
				t.Fatal(err)
			}
			logger := slog.New(slog.DiscardHandler)
			g, err := Build(cfg, Options{Registry: builtin.Registry(logger, nil), Logger: logger})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			srv := httptest.NewServer(g.Handler)
			defer srv.Close()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "POST /x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, X-Forwarded-For\r\n\r\n"+
				"5\r\nhello\r\n0\r\nX-Sum: 42\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if want := `body=hello sum="42" xff-trailer=""`; resp.StatusCode != 200 || string(b) != want {
				t.Fatalf("%d %s; want 200 %s", resp.StatusCode, b, want)
			}
		})
	}
}
