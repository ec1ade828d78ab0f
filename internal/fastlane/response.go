//go:build linux

package fastlane

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// response is the lane's http.ResponseWriter. It writes what net/http's HTTP/1 response writer writes
// for the same calls (Go 1.26 net/http server.go: response, chunkWriter): the same two buffers (2 KiB
// before the head is decided, so a small answer finished by its handler gets a Content-Length; the
// connection's 4 KiB writer), the same head (status line, the handler's fields sorted by
// http.Header.WriteSubset, then Date, Content-Length, Content-Type sniffed, Connection and
// Transfer-Encoding as net/http adds them), chunking, HEAD, 1xx, 204 and 304 rules, trailers, and the same
// keep-alive decision. Hijack is not offered (the lane never takes an Upgrade).
type response struct {
	c   *conn
	req *http.Request

	handlerHeader http.Header
	header        http.Header // the head as it was logically written, when the handler changed it since
	calledHeader  bool
	wroteHeader   bool // logically (WriteHeader called)
	headWritten   bool // physically (chunkWriter.writeHeader)
	status        int
	chunking      bool
	trailers      []string
	handlerDone   bool
	fullDuplex    bool

	written, contentLength int64
	closeAfterReply        bool
	wants10KeepAlive       bool
	wantsClose             bool

	body *body
	w    *bufio.Writer // bufferBeforeChunkingSize, over chunkWriter
}

// bufferBeforeChunkingSize is net/http's: a handler that finishes within it gets a Content-Length.
const bufferBeforeChunkingSize = 2048

// initResponse starts the answer to req; like net/http, it reads the request's keep-alive wishes before
// the handler runs (and may change the request's fields).
func (c *conn) initResponse(w *response, req *http.Request, b *body) {
	conn := get(req.Header, "Connection")
	*w = response{c: c, req: req, handlerHeader: make(http.Header), contentLength: -1, body: b,
		wants10KeepAlive: req.ProtoMinor == 0 && hasToken(conn, "keep-alive"),
		wantsClose:       req.Close || hasToken(conn, "close")}
	w.w = c.chunkBuf
	w.w.Reset(chunkWriter{w})
}

func (w *response) Header() http.Header {
	if w.header == nil && w.wroteHeader && !w.headWritten {
		w.header = w.handlerHeader.Clone()
	}
	w.calledHeader = true
	return w.handlerHeader
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		w.c.l.logf("http: superfluous response.WriteHeader call (fast lane)")
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		bw := w.c.bufw
		writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code, w.c.statusBuf[:])
		_ = w.handlerHeader.WriteSubset(bw, excludedHeadersNoBody)
		bw.WriteString("\r\n")
		bw.Flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	if w.calledHeader && w.header == nil {
		w.header = w.handlerHeader.Clone()
	}
	if cl := get(w.handlerHeader, "Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.c.l.logf("http: invalid Content-Length of %q", cl)
			w.handlerHeader.Del("Content-Length")
		}
	}
}

func (w *response) Write(p []byte) (int, error) { return w.write(len(p), p, "") }

func (w *response) WriteString(s string) (int, error) { return w.write(len(s), nil, s) }

func (w *response) write(n int, b []byte, s string) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if n == 0 {
		return 0, nil
	}
	if !bodyAllowedForStatus(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(n)
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if b != nil {
		return w.w.Write(b)
	}
	return w.w.WriteString(s)
}

// Flush and FlushError flush both buffers, writing the head if it is not out yet.
func (w *response) Flush() { _ = w.FlushError() }

func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	err := w.w.Flush()
	if !w.headWritten {
		w.writeHeader(nil)
	}
	if e2 := w.c.bufw.Flush(); err == nil {
		err = e2
	}
	return err
}

// SetReadDeadline, SetWriteDeadline and EnableFullDuplex are http.ResponseController's, as net/http's.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }
func (w *response) EnableFullDuplex() error            { w.fullDuplex = true; return nil }

// finish is net/http's finishRequest: the rest of the answer and the chunked stream's end.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.w.Flush()
	if !w.headWritten {
		w.writeHeader(nil)
	}
	if w.chunking {
		bw := w.c.bufw
		bw.WriteString("0\r\n")
		if t := w.finalTrailers(); t != nil {
			_ = t.Write(bw)
		}
		bw.WriteString("\r\n")
	}
	w.c.bufw.Flush()
}

// reusable is net/http's shouldReuseConnection, after the handler.
func (w *response) reusable() bool {
	if w.closeAfterReply {
		return false
	}
	if w.req.Method != "HEAD" && w.contentLength != -1 && bodyAllowedForStatus(w.status) && w.contentLength != w.written {
		return false
	}
	return w.c.werr == nil && !w.body.brokenEarly
}

func (w *response) finalTrailers() http.Header {
	var t http.Header
	for k, vv := range w.handlerHeader {
		if kk, found := strings.CutPrefix(k, http.TrailerPrefix); found {
			if t == nil {
				t = make(http.Header)
			}
			t[kk] = vv
		}
	}
	for _, k := range w.trailers {
		if t == nil {
			t = make(http.Header)
		}
		for _, v := range w.handlerHeader[k] {
			t.Add(k, v)
		}
	}
	return t
}

// chunkWriter is what the 2 KiB buffer writes to: the head on its first write, then the body, chunked
// when the head said so.
type chunkWriter struct{ w *response }

func (cw chunkWriter) Write(p []byte) (int, error) {
	w := cw.w
	if !w.headWritten {
		w.writeHeader(p)
	}
	if w.req.Method == "HEAD" {
		return len(p), nil
	}
	bw := w.c.bufw
	if w.chunking {
		bw.Write(strconv.AppendInt(w.c.chunkHead[:0], int64(len(p)), 16))
		if _, err := bw.WriteString("\r\n"); err != nil {
			w.c.rwc.Close()
			return 0, err
		}
	}
	n, err := bw.Write(p)
	if w.chunking && err == nil {
		_, err = bw.WriteString("\r\n")
	}
	if err != nil {
		w.c.rwc.Close()
	}
	return n, err
}

// writeHeader is net/http's chunkWriter.writeHeader: it decides the framing and writes the head; p is
// the body's first bytes (sniffed for a Content-Type; their length is the Content-Length when the
// handler is done).
func (w *response) writeHeader(p []byte) {
	w.headWritten = true
	keepAlives := !w.c.l.closing.Load()
	isHEAD := w.req.Method == "HEAD"
	header := w.header
	owned := header != nil
	if !owned {
		header = w.handlerHeader
	}
	var exclude map[string]bool
	del := func(key string) {
		if owned {
			header.Del(key)
			return
		}
		if _, ok := header[key]; !ok {
			return
		}
		if exclude == nil {
			exclude = make(map[string]bool)
		}
		exclude[key] = true
	}
	var set extraHeader
	trailers := false
	for k := range w.header {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			if exclude == nil {
				exclude = make(map[string]bool)
			}
			exclude[k] = true
			trailers = true
		}
	}
	for _, v := range w.header["Trailer"] {
		trailers = true
		foreachHeaderElement(v, w.declareTrailer)
	}
	te := get(header, "Transfer-Encoding")
	hasTE := te != ""
	if w.handlerDone && !trailers && !hasTE && bodyAllowedForStatus(w.status) && !has(header, "Content-Length") && (!isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		set.contentLength = strconv.AppendInt(w.c.clenBuf[:0], int64(len(p)), 10)
	}
	if w.wants10KeepAlive && keepAlives {
		if get(header, "Content-Length") != "" && get(header, "Connection") == "keep-alive" {
			w.closeAfterReply = false
		}
	}
	hasCL := w.contentLength != -1
	if w.wants10KeepAlive && (isHEAD || hasCL || !bodyAllowedForStatus(w.status)) {
		if _, ok := header["Connection"]; !ok {
			set.connection = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.wantsClose {
		w.closeAfterReply = true
	}
	if get(header, "Connection") == "close" || !keepAlives {
		w.closeAfterReply = true
	}
	// net/http consumes what the handler left of the body before answering on a kept connection (at most
	// 256 KiB; the lane's bodies are smaller), unless full duplex was asked for.
	if w.req.ContentLength != 0 && !w.closeAfterReply && !w.fullDuplex {
		if w.body.closed {
			if !w.body.sawEOF {
				w.closeAfterReply = true
			}
		} else if err := w.body.discard(); err != nil {
			w.closeAfterReply = true
		}
	}
	if bodyAllowedForStatus(w.status) {
		_, haveType := header["Content-Type"]
		if header.Get("Content-Encoding") == "" && !haveType && !hasTE && len(p) > 0 {
			set.contentType = http.DetectContentType(p)
		}
	} else {
		for _, k := range suppressedHeaders(w.status) {
			del(k)
		}
	}
	if !has(header, "Date") {
		set.date = appendDate(w.c.dateBuf[:0], time.Now())
	}
	if hasCL && hasTE && te != "identity" {
		w.c.l.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.contentLength)
		del("Content-Length")
		hasCL = false
	}
	switch {
	case isHEAD || !bodyAllowedForStatus(w.status) || w.status == http.StatusNoContent:
		del("Transfer-Encoding")
	case hasCL:
		del("Transfer-Encoding")
	case w.req.ProtoAtLeast(1, 1):
		if hasTE && te == "identity" {
			w.chunking = false
			w.closeAfterReply = true
			del("Transfer-Encoding")
		} else {
			w.chunking = true
			set.transferEncoding = "chunked"
			if hasTE && te == "chunked" {
				del("Transfer-Encoding")
			}
		}
	default:
		w.closeAfterReply = true
		del("Transfer-Encoding")
	}
	if w.chunking {
		del("Content-Length")
	}
	if w.closeAfterReply && (!keepAlives || !hasToken(get(w.header, "Connection"), "close")) &&
		!(w.status == http.StatusSwitchingProtocols && header.Get("Upgrade") != "") {
		del("Connection")
		if w.req.ProtoAtLeast(1, 1) {
			set.connection = "close"
		}
	}
	bw := w.c.bufw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), w.status, w.c.statusBuf[:])
	_ = header.WriteSubset(bw, exclude)
	set.write(bw)
	bw.WriteString("\r\n")
}

func (w *response) declareTrailer(k string) {
	k = http.CanonicalHeaderKey(k)
	switch k {
	case "Transfer-Encoding", "Trailer", "Content-Length":
		return // net/http's httpguts.ValidTrailerHeader forbids these and the ones below
	}
	if badTrailer[k] {
		return
	}
	w.trailers = append(w.trailers, k)
}

// badTrailer holds the rest of httpguts' forbidden trailer fields.
var badTrailer = map[string]bool{
	"Authorization": true, "Cache-Control": true, "Connection": true, "Content-Encoding": true,
	"Content-Range": true, "Content-Type": true, "Expect": true, "Host": true, "Keep-Alive": true,
	"Max-Forwards": true, "Pragma": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Range": true, "Realm": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Www-Authenticate": true,
}

// extraHeader holds the fields writeHeader adds, written in net/http's order.
type extraHeader struct {
	contentType, connection, transferEncoding string
	date, contentLength                       []byte // written when not nil
}

func (h extraHeader) write(bw *bufio.Writer) {
	if h.date != nil {
		bw.WriteString("Date: ")
		bw.Write(h.date)
		bw.WriteString("\r\n")
	}
	if h.contentLength != nil {
		bw.WriteString("Content-Length: ")
		bw.Write(h.contentLength)
		bw.WriteString("\r\n")
	}
	for i, v := range []string{h.contentType, h.connection, h.transferEncoding} {
		if v != "" {
			bw.WriteString(extraHeaderKeys[i])
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
}

var extraHeaderKeys = []string{"Content-Type", "Connection", "Transfer-Encoding"}

var excludedHeadersNoBody = map[string]bool{"Content-Length": true, "Transfer-Encoding": true}

func suppressedHeaders(status int) []string {
	switch {
	case status == http.StatusNotModified:
		return []string{"Content-Type", "Content-Length", "Transfer-Encoding"}
	case !bodyAllowedForStatus(status):
		return []string{"Content-Length", "Transfer-Encoding"}
	}
	return nil
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199:
		return false
	case status == 204, status == 304:
		return false
	}
	return true
}

func writeStatusLine(bw *bufio.Writer, is11 bool, code int, scratch []byte) {
	bw.Write(appendStatusLine(scratch[:0], is11, code))
}

// appendStatusLine appends net/http's status line for code: its own reason phrase, not the app's.
func appendStatusLine(b []byte, is11 bool, code int) []byte {
	if is11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	if text := http.StatusText(code); text != "" {
		b = strconv.AppendInt(b, int64(code), 10)
		b = append(b, ' ')
		b = append(b, text...)
	} else {
		b = fmt.Appendf(b, "%03d status code %d", code, code)
	}
	return append(b, "\r\n"...)
}

// get and has read a field by its exact (canonical) key, as net/http's Header.get and has.
func get(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func has(h http.Header, key string) bool {
	_, ok := h[key]
	return ok
}

// hasToken reports whether the comma-separated v holds token (ASCII case-insensitive), as net/http's.
func hasToken(v, token string) bool {
	if len(token) > len(v) || token == "" {
		return false
	}
	if v == token {
		return true
	}
	for sp := 0; sp <= len(v)-len(token); sp++ {
		if b := v[sp]; b != token[0] && b|0x20 != token[0] {
			continue
		}
		if sp > 0 && !isTokenBoundary(v[sp-1]) {
			continue
		}
		if endPos := sp + len(token); endPos != len(v) && !isTokenBoundary(v[endPos]) {
			continue
		}
		if strings.EqualFold(v[sp:sp+len(token)], token) {
			return true
		}
	}
	return false
}

func isTokenBoundary(b byte) bool { return b == ' ' || b == ',' || b == '\t' }

func foreachHeaderElement(v string, fn func(string)) {
	v = strings.Trim(v, " \t")
	if v == "" {
		return
	}
	if !strings.Contains(v, ",") {
		fn(v)
		return
	}
	for f := range strings.SplitSeq(v, ",") {
		if f = strings.Trim(f, " \t"); f != "" {
			fn(f)
		}
	}
}

var _ io.StringWriter = (*response)(nil)
