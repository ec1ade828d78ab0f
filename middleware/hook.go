package middleware

import (
	"bufio"
	"net"
	"net/http"
)

// hookWriter calls before once, just before the final response header is sent (explicitly or by the first
// Write or Flush), so a middleware can edit the headers the application set. Informational (1xx) headers
// pass untouched; after Hijack nothing is called. Flush, Hijack and the ResponseController extras reach the
// wrapped writer through Unwrap.
type hookWriter struct {
	http.ResponseWriter
	before func(h http.Header, status int)
	done   bool
}

func newHookWriter(w http.ResponseWriter, before func(http.Header, int)) *hookWriter {
	return &hookWriter{ResponseWriter: w, before: before}
}

func (w *hookWriter) WriteHeader(code int) {
	if !w.done && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.done = true
		w.before(w.ResponseWriter.Header(), code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hookWriter) Write(b []byte) (int, error) {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *hookWriter) Flush() {
	if !w.done {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *hookWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.done = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *hookWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
