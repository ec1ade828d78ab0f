package cgiwire

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSpool(t *testing.T) {
	tests := []struct {
		name   string
		body   io.Reader
		size   int
		inFile bool
		err    bool
	}{
		{name: "an empty body stays in memory", body: strings.NewReader(""), size: 0},
		{name: "a body at the threshold stays in memory", body: strings.NewReader(strings.Repeat("a", 16)), size: 16},
		{name: "a body past the threshold goes to a temp file", body: strings.NewReader(strings.Repeat("b", 100)), size: 100, inFile: true},
		{name: "a read error before the threshold is the client's", body: iotest.TimeoutReader(strings.NewReader(strings.Repeat("c", 8))), err: true},
		{name: "a read error past the threshold is the client's", body: io.MultiReader(strings.NewReader(strings.Repeat("d", 40)), iotest.ErrReader(errors.New("reset"))), err: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var src bytes.Buffer
			sp, n, err := spool(io.TeeReader(tt.body, &src), 16)
			if tt.err {
				var cbe *clientBodyError
				if !errors.As(err, &cbe) {
					t.Fatalf("err = %v, want a clientBodyError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			got, _ := io.ReadAll(sp)
			if n != int64(tt.size) || !bytes.Equal(got, src.Bytes()) || (sp.f != nil) != tt.inFile {
				t.Fatalf("n=%d, %d bytes back, in file %v", n, len(got), sp.f != nil)
			}
		})
	}
}
