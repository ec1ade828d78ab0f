package h1

import (
	"bufio"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/internal/hopbyhop"
)

// FuzzExpressAnswer holds the express path's answer parser (simple) to the general one (parseHead, itself
// held to net/http's ReadResponse by FuzzParseHead): whatever head simple takes, parseHead takes too, with
// the same status, the same Content-Length, the same keep-alive verdict, and Fields (canonical names) are
// exactly the fields the relay would copy (hop-by-hop ones and those the Connection field names dropped),
// in the same order per name; and a simple answer has a length and a type whenever it has a body.
func FuzzExpressAnswer(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nCONTENT-TYPE: a\r\nset-cookie: a\r\nSet-Cookie: b\r\nKeep-Alive: 5\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204 No Content\r\nconnection: Close\r\n\r\n",
		"HTTP/1.1 304\r\nEtag: x\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Type: a\nContent-Length: 1\n\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: x-secret\r\nX-Secret: 1\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A:  \t v \t\r\nContent-Length: 0\r\n\r\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, isHEAD bool) {
		raw, err := readLines(bufio.NewReaderSize(strings.NewReader(s), 16), nil, 1<<20)
		if err != nil {
			return
		}
		var a Answer
		if !simple(raw, isHEAD, &a) {
			return
		}
		var h head
		if err := parseHead(raw, &h); err != nil {
			t.Fatalf("simple took %q, parseHead refused it: %v", raw, err)
		}
		if h.code != a.code || h.length != a.length || h.close == a.keep || h.chunked || h.trailer != nil {
			t.Fatalf("%q: simple says code %d length %d keep %v; parseHead %d %d close %v chunked %v trailer %v",
				raw, a.code, a.length, a.keep, h.code, h.length, h.close, h.chunked, h.trailer)
		}
		if a.code < 200 || a.code > 599 {
			t.Fatalf("%q: a simple answer with status %d", raw, a.code)
		}
		if a.body && (a.length < 0 || a.length > 0 && len(h.header["Content-Type"]) == 0) {
			t.Fatalf("%q: a simple answer with a body and length %d, type %q", raw, a.length, h.header["Content-Type"])
		}
		// What the relay copies: parseHead's header without hop-by-hop fields and those Connection names.
		want := http.Header{}
		hopbyhop.CopyResponse(want, h.header)
		got := http.Header{}
		for _, fl := range a.fields {
			k := textproto.CanonicalMIMEHeaderKey(string(fl.Name))
			got[k] = append(got[k], string(fl.Value))
		}
		if len(got) != len(want) {
			t.Fatalf("%q: simple's fields %v, the relay's %v", raw, got, want)
		}
		for k, vv := range want {
			if !slices.Equal(got[k], vv) {
				t.Fatalf("%q: field %s: simple %q, the relay %q", raw, k, got[k], vv)
			}
		}
	})
}
