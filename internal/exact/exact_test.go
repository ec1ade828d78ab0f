package exact

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	tests := []struct {
		name, in string
		n        int64
		want     string
		err      error
	}{
		{"a stream of exactly the length reads whole", "hello", 5, "hello", nil},
		{"bytes past the length are left unread", "hello world", 5, "hello", nil},
		{"a stream cut short is an error", "hel", 5, "hel", io.ErrUnexpectedEOF},
		{"a zero length reads nothing", "hello", 0, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader, iotest.DataErrReader} {
				got, err := io.ReadAll(Reader(wrap(strings.NewReader(tt.in)), tt.n))
				if string(got) != tt.want || !errors.Is(err, tt.err) && !(tt.err == nil && err == nil) {
					t.Fatalf("got %q, %v; want %q, %v", got, err, tt.want, tt.err)
				}
			}
		})
	}
}
