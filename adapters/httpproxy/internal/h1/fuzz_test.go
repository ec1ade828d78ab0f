package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// FuzzParseHead checks the response head parser against net/http's ReadResponse: it never panics, and a
// head it accepts is one ReadResponse accepts too, with the same status, framing, connection handling,
// header fields and declared trailers. (It may refuse more: see parseHead.)
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-A, x-b\r\n\r\n0\r\n\r\n",
		"HTTP/1.0 404\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nconnection: Close\r\n\r\n",
		"HTTP/1.1 103 Early Hints\nLink: </a>\n\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\nPragma: no-cache\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 999 Odd\r\nX: \xff\xfe\r\nx: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		raw, err := readLines(bufio.NewReaderSize(strings.NewReader(s), 16), nil, 1<<20)
		if err != nil {
			var nb *noBytesError
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.As(err, &nb) && err != errHeadTooLarge {
				t.Fatalf("readLines: unexpected error %v", err)
			}
			return
		}
		if !bytes.HasPrefix([]byte(s), raw) {
			t.Fatalf("readLines returned %q, not a prefix of the input", raw)
		}
		var h head
		if err := parseHead(raw, &h); err != nil {
			return
		}
		req, _ := http.NewRequest("GET", "http://app/", nil)
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(string(raw))), req)
		if err != nil {
			t.Fatalf("parseHead accepted %q, ReadResponse refused it: %v", raw, err)
		}
		if h.code != resp.StatusCode || h.status != resp.Status || h.minor != resp.ProtoMinor {
			t.Fatalf("status %d %q 1.%d, ReadResponse %d %q 1.%d", h.code, h.status, h.minor, resp.StatusCode, resp.Status, resp.ProtoMinor)
		}
		if h.chunked != (len(resp.TransferEncoding) > 0) {
			t.Fatalf("chunked %v, ReadResponse %v", h.chunked, resp.TransferEncoding)
		}
		if h.code >= 200 && h.code != 204 && h.code != 304 && h.length != resp.ContentLength {
			t.Fatalf("length %d, ReadResponse %d", h.length, resp.ContentLength)
		}
		// The transport closes after a body delimited by the close (ReadResponse says so in Close) and
		// after a chunked answer that also declared a length.
		unbounded := !h.chunked && h.length < 0 && h.code >= 200 && h.code != 204 && h.code != 304
		if (h.close || unbounded) != resp.Close && !(h.chunked && h.close) {
			t.Fatalf("close %v, ReadResponse %v", h.close, resp.Close)
		}
		if len(h.header) != len(resp.Header) {
			t.Fatalf("header %q, ReadResponse %q", h.header, resp.Header)
		}
		for k, v := range resp.Header {
			if !slices.Equal(h.header[k], v) {
				t.Fatalf("field %q: %q, ReadResponse %q", k, h.header[k], v)
			}
		}
		if len(h.trailer) != len(resp.Trailer) {
			t.Fatalf("trailer %q, ReadResponse %q", h.trailer, resp.Trailer)
		}
		for k := range resp.Trailer {
			if _, ok := h.trailer[k]; !ok {
				t.Fatalf("trailer %q missing: %q", k, h.trailer)
			}
		}
	})
}
