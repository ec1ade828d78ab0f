package adversarial

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Response-queue poisoning (SECURITY.md, "Unsolicited responses"): an app that writes an answer no request
// asked for on a keep-alive connection - what an app that reads a request body as a second request does
// (a CL.0 or TE.0 desync behind the gateway) - must never have that stale answer delivered to the next
// client whose request reuses the pooled connection, and no later answer may be shifted onto the wrong
// client.

// twiceApp answers every request with "A <target>" and then with a second, unsolicited "B <target>",
// written when its mode says.
type twiceApp struct {
	ln   net.Listener
	mode string // "idle" or "during"
	// poke tells the app (mode "idle") to write the pending B now; wrote reports that it did.
	poke, wrote chan struct{}
	// closed reports each app connection the gateway closed.
	closed chan struct{}
	// accepted counts the connections the gateway opened.
	accepted atomic.Int32
	wg       sync.WaitGroup
}

// newTwiceApp starts the app, over TLS (as an https:// app) when tlsConf is not nil.
func newTwiceApp(t *testing.T, mode string, tlsConf *tls.Config) *twiceApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	a := &twiceApp{ln: ln, mode: mode, poke: make(chan struct{}), wrote: make(chan struct{}, 64), closed: make(chan struct{}, 64)}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a.accepted.Add(1)
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer c.Close()
				a.serve(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); close(a.poke); a.wg.Wait() })
	return a
}

func answer(letter, target string) string {
	body := letter + " " + target
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

func (a *twiceApp) serve(c net.Conn) {
	br := bufio.NewReader(c)
	pending := "" // the B owed for the previous request ("during" mode)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			a.closed <- struct{}{}
			return
		}
		io.Copy(io.Discard, req.Body)
		target := req.URL.Path // the query is the test's lever for the path taken, not part of the name
		switch a.mode {
		case "during": // the stale B arrives while the next request is being answered, ahead of its answer
			if _, err := io.WriteString(c, pending+answer("A", target)); err != nil {
				return
			}
			pending = answer("B", target)
		default: // "idle": the stale B arrives while the connection waits in the gateway's pool
			if _, err := io.WriteString(c, answer("A", target)); err != nil {
				return
			}
			if _, ok := <-a.poke; !ok {
				return
			}
			io.WriteString(c, answer("B", target))
			a.wrote <- struct{}{}
		}
	}
}

func TestUnsolicitedAnswersNeverReachAnotherClient(t *testing.T) {
	paths := []struct {
		name, opts, query string
		// transportClosesAtOnce: net/http's Transport notices an unsolicited answer on an idle connection
		// from its read loop and closes the connection then, not when it is next used.
		transportClosesAtOnce bool
		// body: the requests are POSTs with a body of that many bytes.
		body int
		// tls: the app is an https:// app (HTTP/1.1 over TLS 1.3, with its session tickets).
		tls bool
		// noReuse: the path opens a connection per request (Connection: close), so a late answer has no
		// later request to reach: every client must get its own answer, on its own app connection.
		noReuse bool
	}{
		{name: "fast path, direct"},
		{name: "fast path under ReverseProxy", query: "?a=1;b=2"}, // a ';' query keeps the request off the direct path
		{name: "ReverseProxy path (fast_path=false)", opts: "?fast_path=false", transportClosesAtOnce: true},
		// A body above h1's MaxBodyBytes (16 KiB) goes to net/http's Transport behind the h1 client.
		{name: "h1 fallback (a 32 KiB POST body)", body: 32 << 10, transportClosesAtOnce: true, noReuse: true},
		{name: "https app over HTTP/1.1", opts: "?tls_insecure_skip_verify=true", tls: true, transportClosesAtOnce: true},
		{name: "https app over HTTP/1.1 (fast_path=false)", opts: "?tls_insecure_skip_verify=true&fast_path=false", tls: true, transportClosesAtOnce: true},
	}
	var appTLS *tls.Config
	{
		ts := httptest.NewUnstartedServer(http.NotFoundHandler())
		ts.StartTLS() // for its certificate
		appTLS = ts.TLS.Clone()
		ts.Close()
	}
	// The instant between a connection's idle check and the write of the next request (the residual
	// window SECURITY.md states) is played by adapters/httpproxy/internal/h1's TestUnsolicitedAnswersAreNeverDelivered.
	for _, mode := range []string{"idle", "during"} {
		for _, p := range paths {
			for _, oneConn := range []bool{false, true} {
				name := fmt.Sprintf("late answer %s, %s, clients on new connections", mode, p.name)
				if oneConn {
					name = fmt.Sprintf("late answer %s, %s, one client connection", mode, p.name)
				}
				t.Run(name, func(t *testing.T) {
					scheme, conf := "http://", (*tls.Config)(nil)
					if p.tls {
						scheme, conf = "https://", appTLS
					}
					app := newTwiceApp(t, mode, conf)
					addr, _ := startGateway(t, map[string]string{
						"GATEWAY_PRIMARY": scheme + app.ln.Addr().String() + p.opts,
					})
					var client net.Conn
					var br *bufio.Reader
					dial := func() {
						if client != nil {
							client.Close()
						}
						c, err := net.Dial("tcp", addr)
						if err != nil {
							t.Fatal(err)
						}
						client, br = c, bufio.NewReader(c)
					}
					dial()
					defer func() { client.Close() }()
					var got []string
					shifted := 0
					staleSeen := map[string]bool{}
					for i := 1; i <= 8; i++ {
						if !oneConn && i > 1 {
							dial()
						}
						target := fmt.Sprintf("/%d%s", i, p.query)
						client.SetDeadline(time.Now().Add(ioTimeout))
						if p.body > 0 {
							fmt.Fprintf(client, "POST %s HTTP/1.1\r\nHost: example.test\r\nContent-Length: %d\r\n\r\n%s", target, p.body, strings.Repeat("x", p.body))
						} else {
							fmt.Fprintf(client, "GET %s HTTP/1.1\r\nHost: example.test\r\n\r\n", target)
						}
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							t.Fatalf("request %d: %v", i, err)
						}
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						body := string(b)
						got = append(got, body)
						switch {
						case body == fmt.Sprintf("A /%d", i):
						case mode != "idle" && !p.noReuse && staleB(body, i, staleSeen):
							// The app answered this request with its stale B ahead of the real answer:
							// from the wire, that is this request's answer. What must never follow is a shift: the real answer
							// left behind must not reach the next client. (The B is the one owed on the app connection
							// the request took: the last request's on a single pool; an earlier one's when the fast
							// lane's event loops each keep a pool.)
							shifted++
						default:
							t.Fatalf("client %d asked for %s and got %q (answers so far: %q)", i, target, body, got)
						}
						if mode == "idle" {
							app.poke <- struct{}{}
							<-app.wrote
							if p.transportClosesAtOnce {
								<-app.closed
							}
						}
					}
					switch {
					case p.noReuse:
						if n := app.accepted.Load(); n != 8 {
							t.Errorf("the app saw %d connections for 8 requests, want one each", n)
						}
					case mode == "during" && shifted == 0:
						t.Errorf("no client got a stale answer: the \"during\" case did not happen (answers %q)", got)
					}
				})
			}
		}
	}
}

// staleB reports whether body is the unsolicited B of an earlier request than the i-th, not seen before
// (each B is owed once, on the connection its request took).
func staleB(body string, i int, seen map[string]bool) bool {
	var j int
	if _, err := fmt.Sscanf(body, "B /%d", &j); err != nil || j < 1 || j >= i || seen[body] || body != fmt.Sprintf("B /%d", j) {
		return false
	}
	seen[body] = true
	return true
}
