package cgienv

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadResponseHeader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		status  int
		header  map[string]string
		body    string
		limit   int64
		wantErr bool
	}{
		{name: "a plain document is 200", in: "Content-Type: text/plain\r\n\r\nhello", status: 200, header: map[string]string{"Content-Type": "text/plain"}, body: "hello"},
		{name: "Status sets the code and is removed", in: "Status: 404 Not Found\nContent-Type: text/html\n\nnope", status: 404, header: map[string]string{"Status": "", "Content-Type": "text/html"}, body: "nope"},
		{name: "a bare numeric Status is accepted", in: "Status: 201\r\n\r\n", status: 201},
		{name: "Location without Status redirects with 302", in: "Location: /next\r\n\r\n", status: 302, header: map[string]string{"Location": "/next"}},
		{name: "a header without a colon is refused", in: "garbage\r\n\r\n", wantErr: true},
		{name: "an invalid Status is refused", in: "Status: abc\r\n\r\n", wantErr: true},
		{name: "a truncated header block is refused", in: "Content-Type: text/plain\r\n", wantErr: true},
		{name: "an empty response is refused", in: "", wantErr: true},
		{name: "a control character in a value is refused", in: "X-A: a\x00b\r\n\r\n", wantErr: true},
		{name: "a folded line is refused", in: "X-A: a\r\n b\r\n\r\n", wantErr: true},
		{name: "a header block over the default limit is refused", in: "X-A: " + strings.Repeat("a", DefaultMaxResponseHeaderBytes) + "\r\n\r\n", wantErr: true},
		{name: "a header block of exactly the given limit is accepted", in: "X-A: abc\r\n\r\nbody", limit: 12, status: 200, header: map[string]string{"X-A": "abc"}, body: "body"},
		{name: "a header block one byte over the given limit is refused", in: "X-A: abcd\r\n\r\nbody", limit: 12, wantErr: true},
		{name: "an endless header line is refused at the given limit", in: "X-A: " + strings.Repeat("a", 100000), limit: 1000, wantErr: true},
		{name: "a head of 300 KiB passes a 1 MiB limit", in: "X-A: " + strings.Repeat("a", 300<<10) + "\r\n\r\n", limit: 1 << 20, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			rh, err := ReadResponseHeader(br, tt.limit)
			if tt.wantErr {
				if err == nil || !errors.Is(err, ErrMalformedResponse) {
					t.Fatalf("err = %v, want ErrMalformedResponse", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if rh.Status != tt.status {
				t.Errorf("status = %d, want %d", rh.Status, tt.status)
			}
			for k, v := range tt.header {
				if got := rh.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			body, _ := io.ReadAll(br)
			if string(body) != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
		})
	}
}

func FuzzReadResponseHeader(f *testing.F) {
	for _, s := range []string{"Content-Type: text/plain\r\n\r\nx", "Status: 302\nLocation: /\n\n", "\r\n", "a:b\n"} {
		f.Add(s, uint16(0))
		f.Add(s, uint16(8))
	}
	f.Fuzz(func(t *testing.T, in string, limit uint16) {
		br := bufio.NewReaderSize(strings.NewReader(in), 16)
		rh, err := ReadResponseHeader(br, int64(limit))
		if err == nil && limit > 0 {
			// What the parser consumed is the head, and it fits the limit.
			rest, _ := io.ReadAll(br)
			if head := len(in) - len(rest); head > int(limit) {
				t.Fatalf("accepted a %d-byte head over the limit %d", head, limit)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("error %v does not wrap ErrMalformedResponse", err)
			}
			return
		}
		if rh.Status < 100 || rh.Status > 999 || rh.Header.Get("Status") != "" {
			t.Fatalf("bad result %+v", rh)
		}
	})
}
