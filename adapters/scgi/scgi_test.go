package scgi

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/adaptertest"
	"github.com/switchyard/switchyard/adapters/cgiwire/wiretest"
	"github.com/switchyard/switchyard/internal/testpeer"
)

type logBuffer = adaptertest.LogBuffer

func gateway(t *testing.T, appURL, mount string) (*httptest.Server, *logBuffer) {
	t.Helper()
	_, srv, logs := adaptertest.Serve(t, Kind(), appURL, mount)
	return srv, logs
}

// TestAgainstRealUWSGI runs the shared conformance suite against a real uWSGI's --scgi-socket listener.
// SCGI carries no scheme variable, and its netstring of variables has no 64 KiB block to outgrow.
func TestAgainstRealUWSGI(t *testing.T) {
	wiretest.Run(t, wiretest.Kind{Adapter: Kind(), Scheme: "scgi", Socket: "scgi"})
}

// fakeSCGI serves each connection on a unix socket with serve after parsing the request header.
func fakeSCGI(t *testing.T, serve func(c net.Conn, vars map[string]string, body io.Reader)) string {
	t.Helper()
	return "scgi+unix://" + testpeer.ServeUnix(t, "fake.sock", func(c net.Conn) {
		br := bufio.NewReader(c)
		vars, err := ReadRequest(br, 1<<20)
		if err != nil {
			t.Errorf("bad request header: %v", err)
			return
		}
		m := map[string]string{}
		for _, v := range vars {
			m[v.Name] = v.Value
		}
		serve(c, m, br)
		// Read what is left of the body before closing: closing a unix socket with unread data
		// resets it, and the gateway's read of the answer would fail with ECONNRESET at random.
		// The write side is closed first so an answer delimited by the close ends now.
		c.(*net.UnixConn).CloseWrite()
		if n, err := strconv.ParseInt(m["CONTENT_LENGTH"], 10, 64); err == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, io.LimitReader(br, n))
		}
	})
}

func TestAgainstAFakeSCGIServer(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		serve     func(c net.Conn, vars map[string]string, body io.Reader)
		status    int
		body      string
		header    map[string]string
		truncated bool
		opts      string
	}{
		{name: "a CGI-style head over the 256 KiB default answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				for i := 0; i < 300; i++ {
					if _, err := fmt.Fprintf(c, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 1000)); err != nil {
						return // the gateway gave up reading, as it should
					}
				}
				io.WriteString(c, "\r\nok")
			}},
		{name: "an HTTP head over the 256 KiB default answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n")
				for i := 0; i < 300; i++ {
					if _, err := fmt.Fprintf(c, "X-Big-%d: %s\r\n", i, strings.Repeat("b", 1000)); err != nil {
						return
					}
				}
				io.WriteString(c, "\r\nok")
			}},
		{name: "a CGI body stalling past read_timeout aborts the response", status: 200, truncated: true, opts: "?read_timeout=200ms",
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Content-Type: text/plain\r\n\r\nfirst")
				io.Copy(io.Discard, c) // silent until the gateway closes the connection
			}},
		{name: "a CGI-style head with Status sets the status and headers", status: 404, body: "nope", header: map[string]string{"X-A": "1"},
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Status: 404 Not Found\r\nX-A: 1\r\nContent-Type: text/plain\r\n\r\nnope")
			}},
		{name: "an HTTP status line head is read as HTTP", status: 201, body: "made",
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\nmade")
			}},
		{name: "a CGI body shorter than its Content-Length aborts the response", status: 200, truncated: true,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Content-Length: 10\r\n\r\nshort")
			}},
		{name: "a CGI body longer than its Content-Length is cut at the length", status: 200, body: "exact",
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {
				io.WriteString(c, "Content-Length: 5\r\n\r\nexactly too much")
			}},
		{name: "garbage instead of a head answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) { io.WriteString(c, "\x00\x01 garbage\r\n\r\n") }},
		{name: "a connection closed without an answer answers 502", status: 502,
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) {}},
		{name: "CONTENT_LENGTH comes first, SCGI=1 is sent and the body follows", status: 200, body: "CL=5 SCGI=1 body=hello",
			serve: func(c net.Conn, vars map[string]string, body io.Reader) {
				b := make([]byte, 5)
				io.ReadFull(body, b)
				io.WriteString(c, "Content-Type: text/plain\n\nCL="+vars["CONTENT_LENGTH"]+" SCGI="+vars["SCGI"]+" body="+string(b))
			}},
		{name: "a HEAD answer keeps its length and sends no body", method: "HEAD", status: 200, header: map[string]string{"Content-Length": "7"},
			serve: func(c net.Conn, _ map[string]string, _ io.Reader) { io.WriteString(c, "Content-Length: 7\r\n\r\n") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := gateway(t, fakeSCGI(t, tt.serve)+tt.opts, "")
			method := tt.method
			var body io.Reader
			if method == "" {
				method, body = "POST", strings.NewReader("hello")
			}
			req, _ := http.NewRequest(method, srv.URL+"/", body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.status, got)
			}
			if tt.truncated {
				if err == nil {
					t.Fatalf("truncated body %q looked complete", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.body != "" && string(got) != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			for k, v := range tt.header {
				if resp.Header.Get(k) != v {
					t.Errorf("header %s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
		})
	}
}

func TestTargets(t *testing.T) {
	tests := []struct {
		name string
		app  string
		ok   bool
	}{
		{name: "a TCP address with a port is accepted", app: "scgi://127.0.0.1:4000", ok: true},
		{name: "a unix socket with options is accepted", app: "scgi+unix:///run/a.sock?timeout=1s&read_timeout=2s&dial_timeout=1s&param.X=y", ok: true},
		{name: "a configured SCGI variable is refused", app: "scgi://h:1?param.SCGI=2"},
		{name: "a configured CONTENT_LENGTH is refused", app: "scgi://h:1?param.CONTENT_LENGTH=2"},
		{name: "a configured value with a NUL is refused", app: "scgi://h:1?param.X=a%00b"},
		{name: "the uwsgi-only modifier1 option is refused", app: "scgi://h:1?modifier1=1"},
	}
	reg := adapters.NewRegistry(nil)
	reg.MustRegister(Kind())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, _, err := reg.Parse(tt.app)
			if err == nil {
				_, err = reg.Build(target)
			}
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
