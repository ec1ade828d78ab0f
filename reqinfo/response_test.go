package reqinfo

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestTheRecordingWriterSeesTheFinalAnswer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(w http.ResponseWriter)
		want    Response
	}{
		{"a handler that writes nothing leaves the status to the reader", func(w http.ResponseWriter) {}, Response{}},
		{"a body without a status is a 200", func(w http.ResponseWriter) { _, _ = io.WriteString(w, "hello") }, Response{Status: 200, Bytes: 5}},
		{"an explicit status is kept and the body counted", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "nope")
			_, _ = io.WriteString(w, "!")
		}, Response{Status: 404, Bytes: 5}},
		{"informational answers before the final one are skipped", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		}, Response{Status: 201}},
		{"a second status does not replace the first", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusAccepted)
			w.WriteHeader(http.StatusInternalServerError)
		}, Response{Status: 202}},
		{"a flush before any status sends a 200", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, Response{Status: 200}},
		{"a status after a flush is too late", func(w http.ResponseWriter) {
			w.(http.Flusher).Flush()
			w.WriteHeader(http.StatusTeapot)
		}, Response{Status: 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &Info{}
			tc.handler(in.RecordResponse(httptest.NewRecorder()))
			got, ok := in.Response()
			if !ok || got != tc.want {
				t.Errorf("Response() = %+v, %v; want %+v, true", got, ok, tc.want)
			}
		})
	}
}

func TestThereIsOneRecordingWriterPerRequest(t *testing.T) {
	base := httptest.NewRecorder()
	in := &Info{}
	if _, ok := in.Response(); ok {
		t.Error("an Info nobody records into says it records")
	}
	outer := in.RecordResponse(base)
	if outer == http.ResponseWriter(base) {
		t.Fatal("the first RecordResponse did not wrap")
	}
	if inner := in.RecordResponse(outer); inner != outer {
		t.Error("a second RecordResponse wrapped again")
	}
	var none *Info
	if w := none.RecordResponse(base); w != http.ResponseWriter(base) {
		t.Error("a nil Info wrapped the writer")
	}
	if got, ok := none.Response(); ok || got != (Response{}) {
		t.Errorf("nil Info Response() = %+v, %v", got, ok)
	}
	if u, ok := outer.(interface{ Unwrap() http.ResponseWriter }); !ok || u.Unwrap() != http.ResponseWriter(base) {
		t.Error("the recording writer does not unwrap to the writer it wraps")
	}
}

// TestTheRecordingWriterKeepsTheServersExtras runs over a real loopback server: http.ResponseController
// reaches the server's writer through Unwrap (deadlines, full duplex), and Hijack works and is recorded.
func TestTheRecordingWriterKeepsTheServersExtras(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(t *testing.T, w http.ResponseWriter, r *http.Request)
		want    Response
	}{
		{"deadlines, full duplex and flush reach the server", func(t *testing.T, w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			for name, err := range map[string]error{
				"SetReadDeadline":  rc.SetReadDeadline(time.Now().Add(time.Minute)),
				"SetWriteDeadline": rc.SetWriteDeadline(time.Now().Add(time.Minute)),
				"EnableFullDuplex": rc.EnableFullDuplex(),
			} {
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}
			_, _ = io.WriteString(w, "data: 1\n\n")
			if err := rc.Flush(); err != nil {
				t.Errorf("Flush: %v", err)
			}
		}, Response{Status: 200, Bytes: 9}},
		{"a hijack without a status is a 101", func(t *testing.T, w http.ResponseWriter, r *http.Request) {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("Hijack: %v", err)
				return
			}
			defer c.Close()
			_, _ = brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			_ = brw.Flush()
		}, Response{Status: 101, Hijacked: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan Response, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				in := &Info{}
				tc.handler(t, in.RecordResponse(w), r)
				resp, _ := in.Response()
				got <- resp
			}))
			defer srv.Close()
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if r := <-got; r != tc.want {
				t.Errorf("Response() = %+v, want %+v", r, tc.want)
			}
		})
	}
}

// The server sends no body in answer to HEAD, whatever the handler writes (http.Error's text, a relayed
// body): the record counts what the client got, as the access log's bytes say.
func TestTheBodyWrittenForAHEADRequestIsNotCounted(t *testing.T) {
	for _, tc := range []struct {
		method string
		want   Response
	}{
		{http.MethodHead, Response{Status: http.StatusBadGateway}},
		{http.MethodGet, Response{Status: http.StatusBadGateway, Bytes: int64(len("Bad Gateway\n"))}},
	} {
		t.Run(tc.method, func(t *testing.T) {
			got := make(chan Response, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, in := Attach(r)
				http.Error(in.RecordResponse(w), "Bad Gateway", http.StatusBadGateway)
				resp, _ := in.Response()
				got <- resp
			}))
			defer srv.Close()
			req, _ := http.NewRequest(tc.method, srv.URL, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := <-got
			if r != tc.want {
				t.Errorf("Response() = %+v, want %+v", r, tc.want)
			}
			if r.Bytes != int64(len(body)) {
				t.Errorf("recorded %d body bytes, the client got %d", r.Bytes, len(body))
			}
		})
	}
}
