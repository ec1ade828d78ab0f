package adversarial

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/internal/fastlane"
)

// fastLane is GATEWAY_FAST_LANE for the gateways startGateway starts (unless a test sets it), and
// laneLoops GATEWAY_FAST_LANE_LOOPS: TestMain runs the whole suite with the lane off, then again with it on
// (its event loops, the default), then with it on and no loops (a goroutine per connection), where the
// lane exists.
var (
	fastLane  bool
	laneLoops = "0"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 && fastlane.Supported {
		fmt.Println("adversarial: the suite again with GATEWAY_FAST_LANE=true")
		fastLane = true
		code = m.Run()
	}
	if code == 0 && fastlane.Supported {
		fmt.Println("adversarial: the suite again with GATEWAY_FAST_LANE=true GATEWAY_FAST_LANE_LOOPS=-1")
		laneLoops = "-1"
		code = m.Run()
	}
	os.Exit(code)
}

// ioTimeout bounds every read and write of a test; nothing in the suite waits for a timer to pass.
const ioTimeout = 5 * time.Second

// syncBuf is a log sink the test reads while the gateway writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startGateway builds a gateway from environment-style settings, exactly as cmd/gateway does, and serves it
// with gateway.NewFront (the binary's listener stack and server) on a loopback port. It returns the
// address and a stop function that closes the server and the apps' pools; stop is idempotent and also
// runs at cleanup.
func startGateway(t *testing.T, env map[string]string) (addr string, stop func()) {
	t.Helper()
	if _, set := env["GATEWAY_FAST_LANE"]; !set {
		env = maps.Clone(env)
		env["GATEWAY_FAST_LANE"] = strconv.FormatBool(fastLane)
	}
	if _, set := env["GATEWAY_FAST_LANE_LOOPS"]; !set {
		env = maps.Clone(env)
		env["GATEWAY_FAST_LANE_LOOPS"] = laneLoops
	}
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front := gateway.NewFront(cfg, g.Handler, ln, logger, gateway.FrontOptions{}) // the binary's stack
	srv := front.Server
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = front.Serve()
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			srv.Close()
			<-done
			g.Close()
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("GATEWAY_FAST_LANE=%s GATEWAY_FAST_LANE_LOOPS=%s; gateway log:\n%s", env["GATEWAY_FAST_LANE"], env["GATEWAY_FAST_LANE_LOOPS"], logs.String())
		}
	})
	return ln.Addr().String(), stop
}

// seenRequest is one well-formed request a recording backend received.
type seenRequest struct {
	Conn          int    // which backend connection (0, 1, ...) it came on, in accept order
	Method        string // as on the request line
	Target        string // the request-target, byte for byte
	Proto         string
	Header        http.Header // every field as received (names canonicalised), duplicates kept
	Host          string      // the Host field ("" when absent)
	Body          string
	Chunked       bool
	Trailer       http.Header // trailer fields of a chunked body
	ContentLength int         // the declared length, -1 when none
}

// recorder is a raw TCP backend. It parses what arrives strictly (CRLF line ends only, no control bytes,
// one framing header, well-formed chunks), records every request it could parse and every stream it could
// not, and answers each request with "200 OK" and a body naming the backend, method and target, keeping
// the connection alive. It sends "100 Continue" when asked to.
type recorder struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  []net.Conn
	reqs   []seenRequest
	broken []string // streams that held something other than complete well-formed requests
}

func newRecorder(t *testing.T, name string) *recorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{name: name, ln: ln}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.stop)
	return r
}

// URL is the backend's http:// address.
func (r *recorder) URL() string { return "http://" + r.ln.Addr().String() }

func (r *recorder) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		id := len(r.conns)
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer c.Close()
			r.serve(id, c)
		}()
	}
}

// stop closes the listener, cuts every connection still open (the gateway has answered the client by
// then, so nothing legitimate is still arriving) and waits for the handlers, after which the record is
// final.
func (r *recorder) stop() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.SetReadDeadline(time.Now())
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *recorder) serve(id int, c net.Conn) {
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(2 * ioTimeout))
		req, err := readStrict(br, func() {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n")
		})
		if err != nil {
			if !errors.Is(err, io.EOF) || req != nil {
				r.mu.Lock()
				r.broken = append(r.broken, fmt.Sprintf("%s conn %d: %v", r.name, id, err))
				r.mu.Unlock()
			}
			return
		}
		req.Conn = id
		r.mu.Lock()
		r.reqs = append(r.reqs, *req)
		r.mu.Unlock()
		body := fmt.Sprintf("%s saw %s %s host=%s\n", r.name, req.Method, req.Target, req.Host)
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		if strings.EqualFold(req.Header.Get("Connection"), "close") {
			return
		}
	}
}

// record stops the recorder and returns what it received.
func (r *recorder) record() ([]seenRequest, []string) {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]seenRequest(nil), r.reqs...), append([]string(nil), r.broken...)
}

// errIncomplete marks a stream that ended inside a request.
var errIncomplete = errors.New("stream ended inside a request")

// readStrict reads one request the way a strict HTTP/1.1 server would, refusing anything a lenient one
// might read differently. At a clean end of stream before any byte it returns (nil, io.EOF); any other
// error means the stream held something that is not one complete well-formed request (the returned
// request, if not nil, is the part that was read).
func readStrict(br *bufio.Reader, sendContinue func()) (*seenRequest, error) {
	line, err := readLine(br)
	if err != nil {
		if line == "" && !errors.Is(err, errIncomplete) {
			return nil, io.EOF // clean end between requests (closed, or cut by stop while idle)
		}
		return &seenRequest{}, fmt.Errorf("request line: %w", err)
	}
	parts := strings.Split(line, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || (parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0") {
		return &seenRequest{}, fmt.Errorf("malformed request line %q", line)
	}
	req := &seenRequest{Method: parts[0], Target: parts[1], Proto: parts[2], Header: http.Header{}, ContentLength: -1}
	var total int
	for {
		l, err := readLine(br)
		if err != nil {
			return req, fmt.Errorf("header: %w", err)
		}
		if l == "" {
			break
		}
		if total += len(l); total > 256<<10 {
			return req, errors.New("header too large")
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return req, fmt.Errorf("malformed header line %q", l)
		}
		if l[0] == ' ' || l[0] == '\t' {
			return req, fmt.Errorf("obsolete line folding %q", l)
		}
		for i := 0; i < len(name); i++ {
			if !isTokenChar(name[i]) {
				return req, fmt.Errorf("header name %q has byte %#x", name, name[i])
			}
		}
		req.Header.Add(textproto.CanonicalMIMEHeaderKey(name), strings.Trim(value, " \t"))
	}
	req.Host = req.Header.Get("Host")
	if n := len(req.Header.Values("Host")); n != 1 && !(n == 0 && req.Proto == "HTTP/1.0") {
		return req, fmt.Errorf("%d Host fields", n)
	}
	te, cl := req.Header.Values("Transfer-Encoding"), req.Header.Values("Content-Length")
	switch {
	case len(te) > 0 && len(cl) > 0:
		return req, fmt.Errorf("both Transfer-Encoding %q and Content-Length %q", te, cl)
	case len(cl) > 1:
		return req, fmt.Errorf("%d Content-Length fields", len(cl))
	case len(te) > 1 || len(te) == 1 && te[0] != "chunked":
		return req, fmt.Errorf("Transfer-Encoding %q", te)
	}
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		sendContinue()
	}
	switch {
	case len(te) == 1:
		req.Chunked = true
		body, trailer, err := readChunked(br)
		req.Body, req.Trailer = body, trailer
		if err != nil {
			return req, fmt.Errorf("chunked body: %w", err)
		}
	case len(cl) == 1:
		n, err := strconv.Atoi(cl[0])
		if err != nil || n < 0 || cl[0][0] == '+' {
			return req, fmt.Errorf("Content-Length %q", cl[0])
		}
		req.ContentLength = n
		b := make([]byte, n)
		m, err := io.ReadFull(br, b)
		req.Body = string(b[:m])
		if err != nil {
			return req, fmt.Errorf("body (%d of %d bytes): %w: %v", m, n, errIncomplete, err)
		}
	}
	return req, nil
}

// readLine reads one CRLF-terminated line and refuses bare CR, bare LF and control bytes other than HTAB.
func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		c, err := br.ReadByte()
		if err != nil {
			if len(b) == 0 {
				return "", err
			}
			return string(b), fmt.Errorf("%w: %v", errIncomplete, err)
		}
		if len(b) > 64<<10 {
			return "", errors.New("line too long")
		}
		switch {
		case c == '\r':
			n, err := br.ReadByte()
			if err != nil {
				return string(b), fmt.Errorf("%w: %v", errIncomplete, err)
			}
			if n != '\n' {
				return string(b), fmt.Errorf("bare CR in %q", b)
			}
			return string(b), nil
		case c == '\n':
			return string(b), fmt.Errorf("bare LF after %q", b)
		case c < 0x20 && c != '\t' || c == 0x7f:
			return string(b), fmt.Errorf("control byte %#x after %q", c, b)
		}
		b = append(b, c)
	}
}

// readChunked reads a chunked body strictly and returns its data and trailer fields.
func readChunked(br *bufio.Reader) (string, http.Header, error) {
	var data strings.Builder
	trailer := http.Header{}
	cut := func(line string, err error) error { // an error at the very start of a line is a cut stream too
		if line == "" && !errors.Is(err, errIncomplete) {
			return fmt.Errorf("%w: %v", errIncomplete, err)
		}
		return err
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return data.String(), trailer, cut(line, err)
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseUint(size, 16, 31)
		if err != nil || size == "" {
			return data.String(), trailer, fmt.Errorf("chunk size %q", line)
		}
		if n == 0 {
			for {
				l, err := readLine(br)
				if err != nil {
					return data.String(), trailer, cut(l, err)
				}
				if l == "" {
					return data.String(), trailer, nil
				}
				name, value, _ := strings.Cut(l, ":")
				trailer.Add(textproto.CanonicalMIMEHeaderKey(name), strings.TrimSpace(value))
			}
		}
		b := make([]byte, n)
		m, err := io.ReadFull(br, b)
		data.Write(b[:m])
		if err != nil {
			return data.String(), trailer, fmt.Errorf("%w: %v", errIncomplete, err)
		}
		if l, err := readLine(br); err != nil || l != "" {
			if err != nil {
				return data.String(), trailer, cut(l, err)
			}
			return data.String(), trailer, fmt.Errorf("chunk of %d bytes not followed by CRLF (%q)", n, l)
		}
	}
}

func isTokenChar(c byte) bool {
	return c > 0x20 && c < 0x7f && !strings.ContainsRune("\"(),/:;<=>?@[\\]{}", rune(c))
}

// reply is one response the client read off the wire.
type reply struct {
	Status  int
	Header  http.Header
	Body    string
	Close   bool // the response said Connection: close (or is HTTP/1.0 without keep-alive)
	Interim []int
	Trailer http.Header // the trailers after a chunked body (nil without)
}

// exchange writes raw to a new connection to addr, then reads up to want final responses (1xx answers are
// collected in Interim), stopping early when a response closes the connection. closed reports whether the
// gateway then closed the connection (an EOF within ioTimeout); it is checked only after a response that
// announced Connection: close, or when fewer than want responses came.
func exchange(t *testing.T, addr, raw string, want int) (replies []reply, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	return readReplies(t, c, bufio.NewReader(c), want)
}

func readReplies(t *testing.T, c net.Conn, br *bufio.Reader, want int) (replies []reply, closed bool) {
	t.Helper()
	var interim []int
	for len(replies) < want {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			if isTimeout(err) {
				t.Fatalf("no response %d within %v", len(replies)+1, ioTimeout)
			}
			return replies, true
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("response %d body: %v", len(replies)+1, err)
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			interim = append(interim, resp.StatusCode)
			continue
		}
		replies = append(replies, reply{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Close: resp.Close, Interim: interim, Trailer: resp.Trailer})
		interim = nil
		if resp.Close {
			break
		}
	}
	if len(replies) > 0 && replies[len(replies)-1].Close {
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		n, err := br.Read(make([]byte, 1))
		if n > 0 {
			t.Errorf("bytes after a Connection: close response")
		}
		if isTimeout(err) {
			t.Errorf("the gateway announced Connection: close but kept the connection open")
		}
		closed = err != nil
	}
	return replies, closed
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// statuses lists the status codes of replies, for messages.
func statuses(rs []reply) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

// targets lists what a backend received, for messages.
func targets(rs []seenRequest) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("conn%d %s %s", r.Conn, r.Method, r.Target)
	}
	return out
}
