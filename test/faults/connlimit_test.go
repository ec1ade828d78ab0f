package faults

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// dialFrom connects to the gateway from the loopback address from (any 127.0.0.0/8 address works on
// Linux), so one test can play several clients.
func dialFrom(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// keepAliveGet sends one keep-alive request on c and reads its answer, leaving the connection open.
func keepAliveGet(c net.Conn, br *bufio.Reader) (*http.Response, error) {
	if _, err := io.WriteString(c, "GET /healthy/ HTTP/1.1\r\nHost: gw.test\r\n\r\n"); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// TestTooManyConnectionsFromOneClient: with GATEWAY_MAX_CONNS_PER_CLIENT=3 a client holding three
// keep-alive connections gets 503 (Retry-After, Connection: close) on a fourth, another client is served
// meanwhile, and a slot freed by closing a connection can be taken again.
func TestTooManyConnectionsFromOneClient(t *testing.T) {
	const perClient = 3
	gw := startGateway(t, map[string]string{
		"GATEWAY_MAX_CONNS_PER_CLIENT": "3",
		"GATEWAY_ROUTES":               "/healthy/=" + healthyApp(t),
	}, "")
	var held []net.Conn
	for i := 0; i < perClient; i++ {
		c := dialFrom(t, gw.addr, "127.0.0.1")
		if resp, err := keepAliveGet(c, bufio.NewReader(c)); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d of %d: %v %v, want 200", i+1, perClient, resp, err)
		}
		held = append(held, c)
	}

	c := dialFrom(t, gw.addr, "127.0.0.1")
	r := readAfter(c, get("/healthy/"))
	if r.err != nil || r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Errorf("connection %d from the same client: %s (Retry-After %q), want 503 with Retry-After", perClient+1, r, r.header.Get("Retry-After"))
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Errorf("the refused connection stayed open after the 503")
	}

	other := dialFrom(t, gw.addr, "127.0.0.2")
	if r := readAfter(other, get("/healthy/")); r.err != nil || r.status != 200 {
		t.Errorf("another client while the first is at its limit: %s, want 200", r)
	}

	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for gw.lim.Stats().Open >= perClient { // the gateway notices the close asynchronously
		if time.Now().After(deadline) {
			t.Fatalf("the slot of a closed connection was not freed within 5s: %+v", gw.lim.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	again := dialFrom(t, gw.addr, "127.0.0.1")
	if r := readAfter(again, get("/healthy/")); r.err != nil || r.status != 200 {
		t.Errorf("after one of its connections closed, the client's new connection: %s, want 200", r)
	}
	if st := gw.lim.Stats(); st.RejectedPerClient != 1 || st.RejectedTotal != 0 {
		t.Errorf("refusals counted %+v, want exactly one per-client refusal", st)
	}
}

// TestTooManyConnectionsInTotal: GATEWAY_MAX_CONNS caps all clients together.
func TestTooManyConnectionsInTotal(t *testing.T) {
	gw := startGateway(t, map[string]string{
		"GATEWAY_MAX_CONNS": "2",
		"GATEWAY_ROUTES":    "/healthy/=" + healthyApp(t),
	}, "")
	for _, from := range []string{"127.0.0.1", "127.0.0.2"} {
		c := dialFrom(t, gw.addr, from)
		if resp, err := keepAliveGet(c, bufio.NewReader(c)); err != nil || resp.StatusCode != 200 {
			t.Fatalf("client %s: %v %v, want 200", from, resp, err)
		}
	}
	if r := readAfter(dialFrom(t, gw.addr, "127.0.0.3"), get("/healthy/")); r.err != nil || r.status != http.StatusServiceUnavailable {
		t.Errorf("a third client over GATEWAY_MAX_CONNS=2: %s, want 503", r)
	}
}

func readAfter(c net.Conn, req string) result {
	start := time.Now()
	if _, err := io.WriteString(c, req); err != nil {
		return result{err: err}
	}
	return readResult(c, start)
}
