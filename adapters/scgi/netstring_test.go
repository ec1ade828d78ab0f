package scgi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/switchyard/switchyard/adapters/cgienv"
)

func p(name, value string) cgienv.Param { return cgienv.Param{Name: name, Value: value} }

func TestAppendRequest(t *testing.T) {
	tests := []struct {
		name    string
		vars    []cgienv.Param
		want    string
		wantErr bool
	}{
		{name: "CONTENT_LENGTH goes first and SCGI=1 second", vars: []cgienv.Param{p("A", "b"), p("CONTENT_LENGTH", "12")},
			want: "29:CONTENT_LENGTH\x0012\x00SCGI\x001\x00A\x00b\x00,"},
		{name: "a missing CONTENT_LENGTH is sent as 0", vars: []cgienv.Param{p("REQUEST_METHOD", "GET")},
			want: "43:CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00,"},
		{name: "an SCGI variable from elsewhere is replaced", vars: []cgienv.Param{p("SCGI", "2")},
			want: "24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,"},
		{name: "a NUL in a value is refused", vars: []cgienv.Param{p("A", "x\x00y")}, wantErr: true},
		{name: "a NUL in a name is refused", vars: []cgienv.Param{p("A\x00B", "x")}, wantErr: true},
		{name: "an empty name is refused", vars: []cgienv.Param{p("", "x")}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendRequest(nil, tt.vars)
			if tt.wantErr {
				if err == nil || len(got) != 0 {
					t.Fatalf("err = %v, wrote %q", err, got)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q (%v), want %q", got, err, tt.want)
			}
			if _, err := ReadRequest(bufio.NewReader(bytes.NewReader(got)), 1<<20); err != nil {
				t.Fatalf("own output does not parse: %v", err)
			}
		})
	}
}

func TestReadRequestRefusesGarbage(t *testing.T) {
	tests := []struct{ name, in string }{
		{name: "an empty input", in: ""},
		{name: "a length with a leading zero", in: "024:CONTENT_LENGTH\x000\x00SCGI\x001\x00,"},
		{name: "a length with too many digits", in: "1234567890:"},
		{name: "a length over the limit", in: "99999:"},
		{name: "a missing comma", in: "24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;"},
		{name: "a payload shorter than its length", in: "30:CONTENT_LENGTH\x000\x00"},
		{name: "a name without a value", in: "17:CONTENT_LENGTH\x000\x00A,"},
		{name: "CONTENT_LENGTH not first", in: "24:SCGI\x001\x00CONTENT_LENGTH\x000\x00,"},
		{name: "a non-decimal CONTENT_LENGTH", in: "25:CONTENT_LENGTH\x00-1\x00SCGI\x001\x00,"},
		{name: "no SCGI header", in: "17:CONTENT_LENGTH\x000\x00,"},
		{name: "a duplicated name", in: "31:CONTENT_LENGTH\x000\x00SCGI\x001\x00SCGI\x001\x00,"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadRequest(bufio.NewReader(strings.NewReader(tt.in)), 1000); !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("err = %v, want ErrMalformedRequest", err)
			}
		})
	}
}

// FuzzReadRequest: garbage never panics nor allocates past the limit; whatever parses re-encodes to a
// request that parses to the same variables.
func FuzzReadRequest(f *testing.F) {
	good, _ := AppendRequest(nil, []cgienv.Param{p("CONTENT_LENGTH", "5"), p("PATH_INFO", "/x")})
	for _, s := range []string{string(good), "", "0:,", "24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,", "9999999:"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 4096
		vars, err := ReadRequest(bufio.NewReader(bytes.NewReader(in)), limit)
		if err != nil {
			if !errors.Is(err, ErrMalformedRequest) {
				t.Fatalf("error %v does not wrap ErrMalformedRequest", err)
			}
			return
		}
		again, err := AppendRequest(nil, vars)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", vars, err)
		}
		back, err := ReadRequest(bufio.NewReader(bytes.NewReader(again)), len(again))
		if err != nil {
			t.Fatalf("re-encoded %q does not parse: %v", again, err)
		}
		if diff := cmp.Diff(asMap(vars), asMap(back)); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

// FuzzRequestRoundTrip: any encodable variables come back in protocol order.
func FuzzRequestRoundTrip(f *testing.F) {
	f.Add("REQUEST_METHOD", "GET", "HTTP_X", "a b", "17")
	f.Add("", "", "A", "x\x00", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, cl string) {
		vars := []cgienv.Param{p(k1, v1), p(k2, v2), p("CONTENT_LENGTH", cl)}
		enc, err := AppendRequest(nil, vars)
		if err != nil {
			return // NUL or empty names: refused, by contract
		}
		payload, err := ReadNetstring(bufio.NewReader(bytes.NewReader(enc)), len(enc))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeHeaders(payload)
		if err != nil {
			if k1 == k2 || errors.Is(err, ErrMalformedRequest) && (k1 == "CONTENT_LENGTH" || k2 == "CONTENT_LENGTH" || k1 == "SCGI" || k2 == "SCGI") {
				return // duplicate names are not a valid request
			}
			t.Fatal(err)
		}
		if cl == "" {
			cl = "0"
		}
		want := []cgienv.Param{p("CONTENT_LENGTH", cl), p("SCGI", "1")}
		for _, v := range vars[:2] {
			if v.Name != "CONTENT_LENGTH" && v.Name != "SCGI" {
				want = append(want, v)
			}
		}
		if k1 == "CONTENT_LENGTH" && v1 != "" || k2 == "CONTENT_LENGTH" && v2 != "" {
			return // which CONTENT_LENGTH wins is covered by TestAppendRequest
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

// FuzzReadResponse: any app output gives a response or an error, never a panic, and a declared length is
// never exceeded.
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{"Status: 200 OK\r\nContent-Length: 2\r\n\r\nhi", "HTTP/1.1 204 No Content\r\n\r\n", "Content-Length: x\n\n", "HTTP/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		req, _ := http.NewRequest("GET", "/", nil)
		resp, err := ReadResponse(bufio.NewReader(strings.NewReader(in)), req, 0)
		if err != nil {
			return
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, int64(len(in))+1))
		if resp.ContentLength >= 0 && int64(len(body)) > resp.ContentLength {
			t.Fatalf("read %d bytes past Content-Length %d", len(body), resp.ContentLength)
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func asMap(vars []cgienv.Param) map[string]string {
	m := map[string]string{}
	for _, v := range vars {
		m[v.Name] = v.Value
	}
	return m
}
