package h1

import (
	"bytes"
	"testing"
)

// headEndByIndex is HeadEnd's definition, written the slow way: the shorter of the heads ended by the
// first LF CRLF and by the first LF LF.
func headEndByIndex(b []byte) int {
	end := -1
	if i := bytes.Index(b, []byte("\n\r\n")); i >= 0 {
		end = i + 3
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 && (end < 0 || i+2 < end) {
		end = i + 2
	}
	return end
}

func TestHeadEndFindsTheFirstEmptyLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", -1},
		{"HTTP/1.1 200 OK\r\n", -1},
		{"HTTP/1.1 200 OK\r\nA: b\r\n\r", -1},
		{"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", 25},
		{"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\r\n\r\n", 25},
		{"HTTP/1.1 200 OK\nA: b\n\nbody", 22},
		{"HTTP/1.1 200 OK\r\nA: b\n\n", 23},
		{"HTTP/1.1 200 OK\r\nA: b\n\r\n", 24},
		{"\n\n", 2},
		{"\n\r\n", 3},
		{"\n\r", -1},
		{"\r\n\r\n", 4},
	} {
		if got := HeadEnd([]byte(tc.in)); got != tc.want || got != headEndByIndex([]byte(tc.in)) {
			t.Errorf("HeadEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func FuzzHeadEnd(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", "a\n\nb", "\n\r\n\n", "x\r\n\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := HeadEnd(b), headEndByIndex(b); got != want {
			t.Fatalf("HeadEnd(%q) = %d, want %d", b, got, want)
		}
	})
}
