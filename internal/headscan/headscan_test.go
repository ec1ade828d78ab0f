package headscan

import (
	"slices"
	"testing"
)

func TestScannerFlagsHTTP10HeadsWithTransferEncoding(t *testing.T) {
	tests := []struct {
		name, stream string
		want         []string // the request lines flagged
	}{
		{"an HTTP/1.0 head with Transfer-Encoding", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", []string{"POST /"}},
		{"in any case and after other fields", "GET /x HTTP/1.0\r\nA: b\r\ntRANSFER-eNCODING: gzip\r\n\r\n", []string{"GET /x"}},
		{"with bare line feeds", "POST /b HTTP/1.0\nTransfer-Encoding: chunked\n\n", []string{"POST /b"}},
		{"twice in one head, once flagged", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n", []string{"POST /"}},
		{"an HTTP/1.1 head with Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", nil},
		{"an HTTP/1.0 head without it", "POST / HTTP/1.0\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", nil},
		{"the field only after the head ended", "GET / HTTP/1.0\r\nHost: a\r\n\r\nTransfer-Encoding: chunked\r\n", nil},
		{"a field that only starts alike", "GET / HTTP/1.0\r\nTransfer-Encodings: x\r\nX-Transfer-Encoding: y\r\n\r\n", nil},
		{"a second, pipelined HTTP/1.0 head", "GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST /p?q=1 HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", []string{"POST /p?q=1"}},
	}
	for _, tt := range tests {
		// Every split of the stream into two reads, and byte by byte: lines cross reads.
		t.Run(tt.name, func(t *testing.T) {
			for cut := 0; cut <= len(tt.stream); cut++ {
				var s scanner
				var got []string
				flag := func(l string) { got = append(got, l) }
				s.feed([]byte(tt.stream[:cut]), flag)
				s.feed([]byte(tt.stream[cut:]), flag)
				if !slices.Equal(got, tt.want) {
					t.Fatalf("split at %d: flagged %q, want %q", cut, got, tt.want)
				}
			}
			var s scanner
			var got []string
			for i := range len(tt.stream) {
				s.feed([]byte{tt.stream[i]}, func(l string) { got = append(got, l) })
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("byte by byte: flagged %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzScannerSplitsAlike(f *testing.F) {
	f.Add("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 7)
	f.Add("GET / HTTP/1.1\r\n\r\n", 3)
	f.Fuzz(func(t *testing.T, stream string, cut int) {
		if cut < 0 || cut > len(stream) {
			return
		}
		var whole, split scanner
		var a, b []string
		whole.feed([]byte(stream), func(l string) { a = append(a, l) })
		split.feed([]byte(stream[:cut]), func(l string) { b = append(b, l) })
		split.feed([]byte(stream[cut:]), func(l string) { b = append(b, l) })
		if !slices.Equal(a, b) || whole != split {
			t.Fatalf("one read: %q %+v; split at %d: %q %+v", a, whole, cut, b, split)
		}
	})
}
