package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/internal/testpeer"
	"github.com/switchyard/switchyard/reqinfo"
)

// buildWith is build with the Target adjusted by set before the factory runs (gateway-wide settings).
func buildWith(t testing.TB, raw string, set func(*adapters.Target)) (*Proxy, *httptest.Server, *logBuf) {
	t.Helper()
	logs := &logBuf{}
	reg := adapters.NewRegistry(slog.New(slog.NewTextHandler(logs, nil)))
	reg.MustRegister(Kind())
	tg, _, err := reg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(&tg)
	}
	h, err := reg.Build(tg)
	if err != nil {
		t.Fatal(err)
	}
	p := h.(*Proxy)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, _ = reqinfo.Attach(r)
		p.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { front.Close(); p.Close() })
	return p, front, logs
}

// rawApp is a loopback app that reads one request per connection and hands the connection to play;
// closed reports (once per connection, after play returns) whether the gateway closed the connection.
func rawApp(t *testing.T, play func(c net.Conn, br *bufio.Reader)) (url string, closed <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{}, 16)
	addr := testpeer.ServeTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		play(c, br)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := br.ReadByte(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			select {
			case ch <- struct{}{}:
			default: // nobody listens any more (closed at the test's end)
			}
		}
	})
	return "http://" + addr, ch
}

// fetch GETs url and reads the whole body; it returns the body, the read error and the time taken.
func fetch(t *testing.T, url string) (string, time.Duration, error) {
	t.Helper()
	start := time.Now()
	resp, err := client(t).Get(url)
	if err != nil {
		return "", time.Since(start), err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", time.Since(start), fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), time.Since(start), err
}

func TestReadTimeoutStallLimit(t *testing.T) {
	const limit = 200 * time.Millisecond
	stall := func(c net.Conn, br *bufio.Reader) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"+strings.Repeat("h", 10))
		br.ReadByte() // until the gateway drops the connection (or the test's deadline)
	}
	// pause stalls for 3 limits, then completes the body.
	pause := func(c net.Conn, br *bufio.Reader) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"+strings.Repeat("h", 10))
		time.Sleep(3 * limit)
		io.WriteString(c, strings.Repeat("t", 10))
	}
	// heartbeat sends a chunk every 100ms for 1.5s in all: longer than heartbeatLimit, with beats ten times
	// more often (a loaded 2-core machine delays a beat by a few hundred ms at times: scheduling, not a
	// stall).
	const heartbeatLimit = time.Second
	heartbeat := func(c net.Conn, br *bufio.Reader) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
		for range 15 {
			time.Sleep(100 * time.Millisecond) // the app's own pace, not a synchronisation
			if _, err := io.WriteString(c, "2\r\n.\n\r\n"); err != nil {
				return
			}
		}
		io.WriteString(c, "0\r\n\r\n")
	}
	for _, path := range []string{"fast_path=true", "fast_path=false"} {
		for _, tc := range []struct {
			name    string
			opts    string
			gateway time.Duration // Target.ReadTimeout
			play    func(net.Conn, *bufio.Reader)
			cut     bool
		}{
			{name: "an app stalling mid-body past read_timeout is cut and its connection closed", opts: "read_timeout=" + limit.String(), play: stall, cut: true},
			{name: "the gateway's read timeout applies without the option", gateway: limit, play: stall, cut: true},
			{name: "heartbeats more often than read_timeout keep a long stream alive", opts: "read_timeout=" + heartbeatLimit.String(), play: heartbeat},
			{name: "read_timeout=0 turns the limit off", opts: "read_timeout=0", gateway: limit / 4, play: pause},
			{name: "a negative gateway read timeout turns the limit off", gateway: -1, play: pause},
			{name: "a pause shorter than read_timeout passes", opts: "read_timeout=2s", play: pause},
		} {
			t.Run(tc.name+" ("+path+")", func(t *testing.T) {
				t.Parallel()
				u, closed := rawApp(t, tc.play)
				_, front, logs := buildWith(t, u+"?"+path+"&"+tc.opts, func(tg *adapters.Target) { tg.ReadTimeout = tc.gateway })
				body, took, err := fetch(t, front.URL+"/")
				if !tc.cut {
					if err != nil || len(body) < 20 {
						t.Fatalf("body %q, %v after %v: want the whole body", body, err, took)
					}
					return
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("body %q, error %v: want a cut stream (unexpected EOF)", body, err)
				}
				// Not before the limit; and well before any default (60 s): the cut is read_timeout's.
				if took < limit || took > limit+20*time.Second {
					t.Fatalf("cut after %v, want it from read_timeout %v", took, limit)
				}
				select {
				case <-closed:
				case <-time.After(5 * time.Second):
					t.Fatal("the app's connection stayed open after the cut")
				}
				front.Close()
				l := logs.String()
				if strings.Count(l, "\n") != 1 || !strings.Contains(l, "stalled mid-body") || !strings.Contains(l, "upstream="+strings.TrimPrefix(u, "http://")) || !strings.Contains(l, "app=") {
					t.Fatalf("want one log line naming app, upstream and the stall; log:\n%s", l)
				}
			})
		}
	}
}

func TestReadTimeoutOptionDefaults(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    string
		gateway time.Duration
		want    time.Duration
	}{
		{name: "without option or gateway setting the limit is 60s", want: DefaultReadTimeout},
		{name: "the gateway setting is the default", gateway: 5 * time.Second, want: 5 * time.Second},
		{name: "a negative gateway setting means no limit", gateway: -1, want: 0},
		{name: "the option overrides the gateway", opts: "?read_timeout=2s", gateway: 5 * time.Second, want: 2 * time.Second},
		{name: "read_timeout=0 means no limit", opts: "?read_timeout=0", gateway: 5 * time.Second, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _ := buildWith(t, "http://127.0.0.1:1"+tc.opts, func(tg *adapters.Target) { tg.ReadTimeout = tc.gateway })
			in := p.insts[0]
			if in.fast.ReadTimeout != tc.want {
				t.Fatalf("fast path limit %v, want %v", in.fast.ReadTimeout, tc.want)
			}
			g, ok := in.fast.Fallback.(*stallGuard)
			if (tc.want > 0) != ok || ok && g.limit != tc.want {
				t.Fatalf("fallback %T, want a guard of %v", in.fast.Fallback, tc.want)
			}
		})
	}
}

func TestReadTimeoutSparesWebSocketTunnels(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(app.Close)
	const limit = 100 * time.Millisecond
	_, front, _ := buildWith(t, app.URL+"?read_timeout="+limit.String(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(front.URL, "http")+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := range 2 {
		if i > 0 {
			time.Sleep(5 * limit) // idle well past the limit: a tunnel is not a response body
		}
		msg := fmt.Sprintf("ping %d", i)
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatalf("write after %d idle limits: %v", 5*i, err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestResponseHeadLimitFromTheGateway(t *testing.T) {
	head := func(size int) func(net.Conn, *bufio.Reader) {
		return func(c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Pad: "+strings.Repeat("p", size)+"\r\nContent-Length: 2\r\n\r\nok")
		}
	}
	for _, path := range []string{"fast_path=true", "fast_path=false"} {
		for _, tc := range []struct {
			name   string
			limit  int64 // Target.MaxResponseHeaderBytes (0: the default 256 KiB)
			size   int
			status int
		}{
			{name: "a head under the configured limit passes", limit: 4 << 10, size: 1 << 10, status: 200},
			{name: "a head over the configured limit is 502", limit: 4 << 10, size: 8 << 10, status: 502},
			{name: "a 200 KiB head passes the default limit", size: 200 << 10, status: 200},
			{name: "a 300 KiB head is over the default limit", size: 300 << 10, status: 502},
			{name: "a 300 KiB head passes a 1 MiB limit", limit: 1 << 20, size: 300 << 10, status: 200},
		} {
			t.Run(tc.name+" ("+path+")", func(t *testing.T) {
				t.Parallel()
				u, _ := rawApp(t, head(tc.size))
				_, front, logs := buildWith(t, u+"?"+path, func(tg *adapters.Target) { tg.MaxResponseHeaderBytes = tc.limit })
				resp, err := client(t).Get(front.URL + "/")
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d, want %d; log:\n%s", resp.StatusCode, tc.status, logs)
				}
			})
		}
	}
}

// A tunnel (101) carries a half-close: when the client ends its side, the app reads EOF and can still
// answer on its own side, as on a direct connection. The stall guard's wrapper of the app's connection
// once hid CloseWrite from ReverseProxy, so the app never saw the client's end.
func TestATunnelCarriesTheClientsHalfClose(t *testing.T) {
	for _, path := range []string{"fast_path=true", "fast_path=false"} {
		t.Run(path, func(t *testing.T) {
			u, _ := rawApp(t, func(c net.Conn, br *bufio.Reader) {
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				got, err := io.ReadAll(br)
				fmt.Fprintf(c, "app read %q until %v", got, err)
				c.(*net.TCPConn).CloseWrite()
			})
			_, front, _ := buildWith(t, u+"?"+path, nil)
			c, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("upgrade: %v %v", resp, err)
			}
			io.WriteString(c, "hello")
			c.(*net.TCPConn).CloseWrite()
			rest, err := io.ReadAll(br)
			if want := `app read "hello" until <nil>`; string(rest) != want || err != nil {
				t.Errorf("after the client's half-close: %q, %v; want %q", rest, err, want)
			}
		})
	}
}
