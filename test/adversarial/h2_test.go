package adversarial

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
)

// startTLSGateway serves a gateway over TLS with HTTP/2 (as GATEWAY_TLS_CERT does), on gateway.Server.
func startTLSGateway(t *testing.T, env map[string]string) (addr string, stop func()) {
	t.Helper()
	cfg, err := config.Load(env, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuf{}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	ts := httptest.NewUnstartedServer(g.Handler)
	ts.Config = gateway.Server(cfg, g.Handler, logger)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			ts.Close()
			g.Close()
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return ts.Listener.Addr().String(), stop
}

// h2Request sends one HTTP/2 request on a fresh TLS connection, frame by frame, with the header fields
// exactly as given (pseudo-headers first, no validation on this side), and the body as DATA frames.
// It returns the response status, or 0 with the reason when the stream or connection was refused.
func h2Request(t *testing.T, addr string, fields [][2]string, data []string) (status int, refused string) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	conn.SetDeadline(time.Now().Add(ioTimeout))
	conn.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(conn, conn)
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true, EndStream: len(data) == 0})
	for i, d := range data {
		fr.WriteData(1, i == len(data)-1, []byte(d))
	}
	dec := hpack.NewDecoder(4096, nil)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0, "connection: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID != 1 {
				continue
			}
			hf, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hf {
				if h.Name == ":status" {
					status, _ = strconv.Atoi(h.Value)
				}
			}
			if status >= 200 {
				return status, ""
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return 0, "RST_STREAM " + f.ErrCode.String()
			}
		case *http2.GoAwayFrame:
			return 0, "GOAWAY " + f.ErrCode.String()
		}
	}
}

func h2Fields(method, path string, extra ...[2]string) [][2]string {
	return append([][2]string{{":method", method}, {":scheme", "https"}, {":authority", "gw.test"}, {":path", path}}, extra...)
}

// TestHTTP2DowngradeSmuggling sends HTTP/2 requests the gateway must turn into HTTP/1.1 for the apps
// without letting a length, a coding or a line break chosen by the client reframe the HTTP/1.1 stream
// (HTTP/2 desync attacks: H2.CL, H2.TE, request splitting through header values, James Kettle 2021).
func TestHTTP2DowngradeSmuggling(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields [][2]string
		data   []string
		// ok says the request must be answered 200 by the app with backend as what it received; otherwise
		// it must be refused (4xx, RST_STREAM or GOAWAY) and no complete request may reach the app.
		ok      bool
		backend []string
		body    string
	}{
		{"an ordinary HTTP/2 POST is forwarded as one HTTP/1.1 request with its body", h2Fields("POST", "/a", [2]string{"content-length", "5"}),
			[]string{"hel", "lo"}, true, []string{"POST /a"}, "hello"},
		{"H2.CL desync: a content-length shorter than the DATA is refused", h2Fields("POST", "/a", [2]string{"content-length", "1"}),
			[]string{"x" + smuggledGET}, false, nil, ""},
		{"H2.CL desync: a content-length longer than the DATA is refused with 400", h2Fields("POST", "/a", [2]string{"content-length", "100"}),
			[]string{"hello"}, false, nil, ""},
		{"H2.TE desync: transfer-encoding in an HTTP/2 request is refused", h2Fields("POST", "/a", [2]string{"transfer-encoding", "chunked"}),
			[]string{"0\r\n\r\n" + smuggledGET}, false, nil, ""},
		{"HTTP/2 request splitting: CRLF in a header value is refused", h2Fields("GET", "/a", [2]string{"x-a", "b\r\nTransfer-Encoding: chunked"}),
			nil, false, nil, ""},
		{"HTTP/2 request splitting: CRLF and a request in :path are refused", h2Fields("GET", "/a HTTP/1.1\r\nHost: gw.test\r\n\r\nGET "+smuggled),
			nil, false, nil, ""},
		{"HTTP/2 request splitting: a header name with a colon or space is refused", h2Fields("GET", "/a", [2]string{"x-a : b", "c"}),
			nil, false, nil, ""},
		{"h2c smuggling over HTTP/2: an upgrade header is refused", h2Fields("GET", "/a", [2]string{"upgrade", "h2c"}),
			nil, false, nil, ""},
		{"a connection-specific header in HTTP/2 is refused", h2Fields("GET", "/a", [2]string{"connection", "x-forwarded-for"}),
			nil, false, nil, ""},
		{"a host header next to :authority: :authority routes and is the one Host the app sees", [][2]string{{":method", "GET"}, {":scheme", "https"},
			{":authority", "admin.example.com"}, {":path", "/x"}, {"host", "gw.test"}},
			nil, true, []string{"admin-host GET /x admin.example.com"}, ""},
		{"dot segments in :path are resolved before routing", h2Fields("GET", "/public/../x"), nil, true, []string{"GET /x"}, ""},
		{"encoded dot segments in :path are refused", h2Fields("GET", "/public/%2e%2e/x"), nil, false, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder(t, "primary")
			hostRec := newRecorder(t, "admin-host")
			addr, stop := startTLSGateway(t, map[string]string{"GATEWAY_PRIMARY": rec.URL(), "GATEWAY_ROUTES": "admin.example.com/=" + hostRec.URL()})
			status, refused := h2Request(t, addr, tc.fields, tc.data)
			stop()
			reqs, broken := rec.record()
			hreqs, hbroken := hostRec.record()
			for _, r := range hreqs {
				r.Method = "admin-host " + r.Method
				r.Target += " " + r.Host
				reqs = append(reqs, r)
			}
			broken = append(broken, hbroken...)
			if tc.ok {
				if status != 200 || !slices.Equal(targets2(reqs), tc.backend) || len(broken) > 0 {
					t.Fatalf("status %d %s, backend %v %q; want 200 and %v", status, refused, targets2(reqs), broken, tc.backend)
				}
				if tc.body != "" && reqs[0].Body != tc.body {
					t.Errorf("body %q, want %q", reqs[0].Body, tc.body)
				}
				return
			}
			if status != 0 && (status < 400 || status >= 500) {
				t.Errorf("status %d, want a refusal", status)
			}
			if len(reqs) > 0 {
				t.Errorf("the app received %v", targets2(reqs))
			}
			for _, b := range broken {
				if !strings.Contains(b, errIncomplete.Error()) {
					t.Errorf("the app received a malformed request: %s", b)
				}
			}
			t.Logf("refused: status %d %s", status, refused)
		})
	}
}
