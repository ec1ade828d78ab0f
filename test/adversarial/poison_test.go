package adversarial

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
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
	wg     sync.WaitGroup
}

func newTwiceApp(t *testing.T, mode string) *twiceApp {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
	}{
		{name: "fast path, direct"},
		{name: "fast path under ReverseProxy", query: "?a=1;b=2"}, // a ';' query keeps the request off the direct path
		{name: "ReverseProxy path (fast_path=false)", opts: "?fast_path=false", transportClosesAtOnce: true},
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
					app := newTwiceApp(t, mode)
					addr, _ := startGateway(t, map[string]string{
						"GATEWAY_PRIMARY": "http://" + app.ln.Addr().String() + p.opts,
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
					for i := 1; i <= 8; i++ {
						if !oneConn && i > 1 {
							dial()
						}
						target := fmt.Sprintf("/%d%s", i, p.query)
						client.SetDeadline(time.Now().Add(ioTimeout))
						fmt.Fprintf(client, "GET %s HTTP/1.1\r\nHost: example.test\r\n\r\n", target)
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
						case mode != "idle" && body == fmt.Sprintf("B /%d", i-1):
							// The app answered this request with its stale B ahead of the real answer:
							// from the wire, that is this request's answer. What must never follow is a shift: the real answer
							// left behind must not reach the next client.
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
					if mode == "during" && shifted == 0 {
						t.Errorf("no client got a stale answer: the \"during\" case did not happen (answers %q)", got)
					}
				})
			}
		}
	}
}
