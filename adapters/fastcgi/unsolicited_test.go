package fastcgi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/testpeer"
)

// stutterApp answers every request on a keep-alive connection with "A <n>" (n counting requests across
// connections) and then, when mode says, with stale records no request asked for: "idle" writes a complete
// second answer "B <n>" for the same request id when poked, while the connection waits in the pool;
// "during" writes it ahead of the next request's answer.
func stutterApp(t *testing.T, mode string, poke <-chan struct{}, wrote chan<- struct{}) (app string, ln *countingListener) {
	t.Helper()
	ln, app = listen(t, "unix")
	n := 0
	testpeer.Serve(t, ln, func(c net.Conn) {
		rr := recordReader{br: bufio.NewReader(c)}
		pending := []byte(nil)
		for {
			h, err := rr.Next()
			if err != nil {
				return
			}
			if h.Type != typeStdin || h.ContentLength != 0 {
				io.Copy(io.Discard, &rr)
				continue
			}
			n++
			a := records(h.ID, typeStdout, fmt.Sprintf("Content-Type: text/plain\r\n\r\nA %d", n), typeEndRequest, endOK)
			b := records(h.ID, typeStdout, fmt.Sprintf("Content-Type: text/plain\r\n\r\nB %d", n), typeEndRequest, endOK)
			switch mode {
			case "during":
				c.Write(append(pending, a...))
				pending = b
			default:
				c.Write(a)
				if _, ok := <-poke; !ok {
					return
				}
				c.Write(b)
				wrote <- struct{}{}
			}
		}
	})
	return app, ln
}

// TestUnsolicitedRecordsAreNeverDelivered: response-queue poisoning through the FastCGI pool (SECURITY.md).
func TestUnsolicitedRecordsAreNeverDelivered(t *testing.T) {
	t.Run("stale records that arrived while the connection was idle drop it", func(t *testing.T) {
		poke, wrote := make(chan struct{}), make(chan struct{})
		app, ln := stutterApp(t, "idle", poke, wrote)
		defer close(poke)
		h, srv, logs := gateway(t, app, "")
		for i := 1; i <= 4; i++ {
			resp, body := get(t, mustRequest("GET", srv.URL+"/"))
			if want := fmt.Sprintf("A %d", i); resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("request %d: %d %q, want %q", i, resp.StatusCode, body, want)
			}
			poke <- struct{}{}
			<-wrote
		}
		if got := h.Health()[0].Unsolicited; got != 3 {
			t.Fatalf("Unsolicited = %d, want 3", got)
		}
		if ln.n.Load() != 4 {
			t.Fatalf("%d app connections, want 4 (a new one after each poisoned one)", ln.n.Load())
		}
		if !strings.Contains(logs.String(), "unsolicited records") {
			t.Fatalf("no log line: %s", logs)
		}
	})
	t.Run("stale records ahead of the next answer are never that answer", func(t *testing.T) {
		app, _ := stutterApp(t, "during", nil, nil)
		_, srv, _ := gateway(t, app, "")
		refused := 0
		for i := 1; i <= 6; i++ {
			resp, body := get(t, mustRequest("GET", srv.URL+"/"))
			// Request ids count up per connection, so a stale answer carries the previous id: a protocol
			// error (502) for the request it preceded, never its answer.
			if resp.StatusCode == http.StatusBadGateway {
				refused++
				continue
			}
			if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "A ") {
				t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
			}
		}
		if refused == 0 {
			t.Fatal("no stale answer ever preceded a real one: the case did not happen")
		}
	})
}

// TestConnectionNamedFieldsStayWithTheApp: a field the app's Connection field names is hop-by-hop (RFC 9110
// 7.6.1) and never reaches the client, as on the HTTP adapter.
func TestConnectionNamedFieldsStayWithTheApp(t *testing.T) {
	app := rawApp(t, func(c net.Conn, id uint16) {
		c.Write(records(id, typeStdout, "Content-Type: text/plain\r\nConnection: X-Secret, keep-alive\r\nX-Secret: internal\r\nKeep-Alive: timeout=5\r\nX-Kept: k\r\n\r\nok", typeEndRequest, endOK))
	})
	_, srv, _ := gateway(t, app, "")
	resp, body := get(t, mustRequest("GET", srv.URL+"/"))
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	for _, k := range []string{"X-Secret", "Keep-Alive"} {
		if v := resp.Header.Get(k); v != "" {
			t.Errorf("%s: %q reached the client", k, v)
		}
	}
	if resp.Header.Get("X-Kept") != "k" {
		t.Errorf("X-Kept lost: %v", resp.Header)
	}
}
