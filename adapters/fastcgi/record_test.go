package fastcgi

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPairsRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		pairs [][2]string
	}{
		{name: "short names and values use one-byte lengths", pairs: [][2]string{{"A", "b"}, {"SCRIPT_NAME", "/index.php"}}},
		{name: "an empty value is kept", pairs: [][2]string{{"QUERY_STRING", ""}}},
		{name: "a 127-byte value still uses one byte", pairs: [][2]string{{"X", strings.Repeat("v", 127)}}},
		{name: "a 128-byte value switches to four bytes", pairs: [][2]string{{"X", strings.Repeat("v", 128)}}},
		{name: "a long name and a long value both use four bytes", pairs: [][2]string{{strings.Repeat("N", 300), strings.Repeat("v", 70000)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b []byte
			want := 0
			for _, p := range tt.pairs {
				b = appendPair(b, p[0], p[1])
				want += pairLen(p[0], p[1])
			}
			if len(b) != want {
				t.Fatalf("encoded %d bytes, pairLen says %d", len(b), want)
			}
			got, err := decodePairs(b)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.pairs, got); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodePairsRefusesGarbage(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "a lone name length", in: []byte{3}},
		{name: "a truncated four-byte length", in: []byte{0x80, 0, 1}},
		{name: "a name longer than the data", in: []byte{5, 0, 'a'}},
		{name: "a value longer than the data", in: []byte{1, 5, 'a', 'b'}},
		{name: "a huge length does not allocate or overflow", in: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := decodePairs(tt.in); !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
		})
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	contents := [][]byte{nil, []byte("x"), bytes.Repeat([]byte("y"), 9), bytes.Repeat([]byte("z"), maxContent)}
	for i, c := range contents {
		if err := writeRecord(w, typeStdout, uint16(i+1), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeRecord(w, typeStdout, 1, make([]byte, maxContent+1)); err == nil {
		t.Fatal("a record over 65535 bytes was written")
	}
	w.Flush()
	if buf.Len()%8 != 0 {
		t.Fatalf("records are not padded to 8 bytes: %d", buf.Len())
	}
	rr := recordReader{br: bufio.NewReader(&buf)}
	for i, want := range contents {
		h, err := rr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if h.ID != uint16(i+1) || h.Type != typeStdout {
			t.Fatalf("header %+v", h)
		}
		got, err := io.ReadAll(&rr)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("record %d: %d bytes, err %v", i, len(got), err)
		}
	}
	if _, err := rr.Next(); err != io.EOF {
		t.Fatalf("after the last record: %v, want io.EOF", err)
	}
}

func TestRecordReaderRefusesGarbage(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{name: "a wrong version", in: []byte{2, typeStdout, 0, 1, 0, 0, 0, 0}, want: ErrProtocol},
		{name: "a header cut short", in: []byte{1, typeStdout, 0}, want: io.ErrUnexpectedEOF},
		{name: "content cut short", in: []byte{1, typeStdout, 0, 1, 0, 9, 0, 0, 'a'}, want: io.ErrUnexpectedEOF},
		{name: "padding cut short", in: []byte{1, typeStdout, 0, 1, 0, 0, 7, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, want: io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rr := recordReader{br: bufio.NewReader(bytes.NewReader(tt.in))}
			var err error
			for i := 0; i < 4 && err == nil; i++ {
				if _, err = rr.Next(); err == nil {
					_, err = io.ReadAll(&rr)
				}
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// stdoutOf reads a response stream for request id 1 the way the handler does.
func stdoutOf(in []byte) ([]byte, *stdout, error) {
	h := &Handler{logger: slog.New(slog.DiscardHandler)}
	s := &stdout{rr: recordReader{br: bufio.NewReader(bytes.NewReader(in))}, id: 1, errlog: stderrLog{h: h}}
	out, err := io.ReadAll(io.LimitReader(s, 1<<20))
	return out, s, err
}

func TestStdoutStream(t *testing.T) {
	rec := func(typ uint8, id uint16, content string) []byte {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		_ = writeRecord(w, typ, id, []byte(content))
		w.Flush()
		return b.Bytes()
	}
	end := func(id uint16, proto byte) []byte {
		return rec(typeEndRequest, id, "\x00\x00\x00\x00"+string(proto)+"\x00\x00\x00")
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr error
	}{
		{name: "stdout and stderr interleave until END_REQUEST", in: cat(rec(typeStdout, 1, "a"), rec(typeStderr, 1, "oops\n"), rec(typeStdout, 1, "b"), rec(typeStdout, 1, ""), end(1, 0)), want: "ab"},
		{name: "management records are skipped", in: cat(rec(typeUnknownType, 0, "\x63\x00\x00\x00\x00\x00\x00\x00"), rec(typeStdout, 1, "a"), end(1, 0)), want: "a"},
		{name: "a record for another request is a protocol error", in: cat(rec(typeStdout, 2, "a"), end(2, 0)), wantErr: ErrProtocol},
		{name: "a connection closed before END_REQUEST is an unexpected EOF", in: rec(typeStdout, 1, "a"), want: "a", wantErr: io.ErrUnexpectedEOF},
		{name: "an overloaded application is a protocol error", in: end(1, statusOverloaded), wantErr: ErrProtocol},
		{name: "an END_REQUEST of the wrong size is a protocol error", in: rec(typeEndRequest, 1, "\x00"), wantErr: ErrProtocol},
		{name: "an unknown record type is a protocol error", in: rec(typeData, 1, "x"), wantErr: ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := stdoutOf(tt.in)
			if string(got) != tt.want {
				t.Errorf("stdout = %q, want %q", got, tt.want)
			}
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func FuzzReadRecords(f *testing.F) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	_ = writeRecord(w, typeStdout, 1, []byte("Content-Type: text/plain\r\n\r\nhi"))
	_ = writeRecord(w, typeStderr, 1, []byte("warn\n"))
	_ = writeRecord(w, typeEndRequest, 1, make([]byte, 8))
	w.Flush()
	f.Add(b.Bytes())
	f.Add([]byte{1, 6, 0, 1, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		// The record layer: every header either fails or yields exactly ContentLength bytes.
		rr := recordReader{br: bufio.NewReader(bytes.NewReader(in))}
		for i := 0; i < 1000; i++ {
			h, err := rr.Next()
			if err != nil {
				break
			}
			got, err := io.ReadAll(&rr)
			if err == nil && len(got) != int(h.ContentLength) {
				t.Fatalf("read %d content bytes, header says %d", len(got), h.ContentLength)
			}
			if err != nil {
				break
			}
		}
		// The response layer: never panics, ends in EOF-after-END or an error, never yields more than it got.
		out, s, err := stdoutOf(in)
		if len(out) > len(in) {
			t.Fatalf("%d stdout bytes from %d input bytes", len(out), len(in))
		}
		if err == nil && s.end == nil {
			t.Fatal("clean end without END_REQUEST")
		}
	})
}

func FuzzDecodePairs(f *testing.F) {
	f.Add(appendPair(appendPair(nil, "SCRIPT_NAME", "/x.php"), "Q", strings.Repeat("v", 200)))
	f.Add([]byte{0x80, 0, 0, 1, 0, 'a'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		pairs, err := decodePairs(in)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		var re []byte
		for _, p := range pairs {
			re = appendPair(re, p[0], p[1])
		}
		again, err := decodePairs(re)
		if err != nil {
			t.Fatalf("re-encoded pairs do not decode: %v", err)
		}
		if diff := cmp.Diff(pairs, again); diff != "" && len(pairs) > 0 {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
