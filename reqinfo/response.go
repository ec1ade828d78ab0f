package reqinfo

import (
	"bufio"
	"net"
	"net/http"
)

// Response is what the recording writer saw of an answer.
type Response struct {
	// Status is the final status: the first one written that is not an informational 1xx (101 Switching
	// Protocols counts), 200 when body bytes or a flush came first, 101 when the connection was hijacked
	// before any. 0 means nothing was sent (yet): the consumer decides what that means (a handler that
	// returned without writing answered 200; a cancelled request, 499; a panic, an aborted answer).
	Status int
	// Bytes counts the body bytes the handler wrote (as accepted by the wrapped writer), none for a HEAD
	// request (recorded by an Info of Attach): the server drops what a handler writes for it, and the
	// access log counts what the client got, as nginx's body_bytes_sent.
	Bytes int64
	// Hijacked says a handler took the connection over (a WebSocket tunnel, say).
	Hijacked bool
}

// RecordResponse returns a ResponseWriter that passes everything through to w and records the answer in
// in, for Response to report. There is one recording writer per Info: when in already records (a
// middleware further out installed one), or in is nil, w is returned unchanged, so a middleware that
// wants the answer calls RecordResponse and then reads Response after its next handler returns, paying
// for a wrapper only when nobody outside provides one.
//
// The returned writer has Flush and Hijack, and Unwrap for http.ResponseController (deadlines, full
// duplex and the rest reach the server's writer). It is owned by in: it must not be used after the
// request is done.
func (in *Info) RecordResponse(w http.ResponseWriter) http.ResponseWriter {
	if in == nil {
		return w
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.recording {
		return w
	}
	in.recording = true
	in.rw = responseWriter{ResponseWriter: w, in: in}
	return &in.rw
}

// Response returns the answer as recorded so far, and whether a recording writer is installed (ok false:
// in is nil or RecordResponse was never called, and the Response is empty). Nil-safe.
func (in *Info) Response() (resp Response, ok bool) {
	if in == nil {
		return Response{}, false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.resp, in.recording
}

// responseWriter is the recording writer RecordResponse installs.
type responseWriter struct {
	http.ResponseWriter
	in *Info
}

func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
		w.in.mu.Lock()
		if w.in.resp.Status == 0 {
			w.in.resp.Status = code
		}
		w.in.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.in.mu.Lock()
	if w.in.resp.Status == 0 {
		w.in.resp.Status = http.StatusOK
	}
	if !w.in.head {
		w.in.resp.Bytes += int64(n)
	}
	w.in.mu.Unlock()
	return n, err
}

// Flush flushes the wrapped writer if it can; it is a no-op otherwise, as http.Flusher allows. A flush
// before any status sends the header: the answer is then a 200.
func (w *responseWriter) Flush() {
	w.in.mu.Lock()
	if w.in.resp.Status == 0 {
		w.in.resp.Status = http.StatusOK
	}
	w.in.mu.Unlock()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes over the connection; the answer keeps the status written before, or 101 when none was.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.in.mu.Lock()
		w.in.resp.Hijacked = true
		if w.in.resp.Status == 0 {
			w.in.resp.Status = http.StatusSwitchingProtocols
		}
		w.in.mu.Unlock()
	}
	return c, rw, err
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
