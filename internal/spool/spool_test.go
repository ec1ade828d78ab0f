package spool

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// openIn lists the descriptors of this process that point into dir (the temp files a test made there).
func openIn(t *testing.T, dir string) []string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc/self/fd")
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			out = append(out, target)
		}
	}
	return out
}

// pattern is an endless body of distinct-looking bytes; reads counts the Read calls it answered.
type pattern struct {
	off   int64
	reads int
	// onRead, if set, runs before every read with the number of reads so far.
	onRead func(reads int)
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.onRead != nil {
		p.onRead(p.reads)
	}
	p.reads++
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func patternBytes(n int) []byte {
	b := make([]byte, n)
	io.ReadFull(&pattern{}, b)
	return b
}

func TestRead(t *testing.T) {
	tests := []struct {
		name   string
		body   []byte
		opts   Options
		inFile bool
	}{
		{name: "an empty body stays in memory", body: []byte{}, opts: Options{Memory: 16}},
		{name: "a small body stays in memory", body: []byte("hello"), opts: Options{Memory: 16}},
		{name: "a body of exactly the memory size stays in memory", body: patternBytes(16), opts: Options{Memory: 16}},
		{name: "a body one byte past the memory size goes to a file", body: patternBytes(17), opts: Options{Memory: 16}, inFile: true},
		{name: "a large body goes to a file", body: patternBytes(3<<20 + 7), opts: Options{Memory: 1 << 10}, inFile: true},
		{name: "the zero options hold a 1 MiB body in memory", body: patternBytes(DefaultMemory), opts: Options{}},
		{name: "the zero options put a body past 1 MiB in a file", body: patternBytes(DefaultMemory + 1), opts: Options{}, inFile: true},
		{name: "a body of exactly the limit is accepted in memory", body: patternBytes(10), opts: Options{Memory: 16, Limit: 10}},
		{name: "a body of exactly the limit is accepted from a file", body: patternBytes(100), opts: Options{Memory: 16, Limit: 100}, inFile: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.opts.Dir = dir
			srcs := []io.Reader{bytes.NewReader(tt.body)}
			if len(tt.body) <= 1<<10 {
				// One byte per read as well, so the thresholds are crossed mid-read too (too slow for big bodies).
				srcs = append(srcs, iotest.OneByteReader(bytes.NewReader(tt.body)))
			}
			for _, src := range srcs {
				b, err := Read(context.Background(), src, tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				if b.Len() != int64(len(tt.body)) {
					t.Errorf("Len() = %d, want %d", b.Len(), len(tt.body))
				}
				if (b.file != nil) != tt.inFile {
					t.Errorf("in a file: %v, want %v", b.file != nil, tt.inFile)
				}
				if b.file != nil {
					if _, err := os.Stat(b.file.Name()); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("the temp file %s still has a name (stat: %v): a crash would leak it", b.file.Name(), err)
					}
					if open := openIn(t, dir); len(open) != 1 || !strings.HasSuffix(open[0], " (deleted)") {
						t.Errorf("descriptors into the spool dir = %q, want one deleted file", open)
					}
				}
				got, err := io.ReadAll(b)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, tt.body) {
					t.Errorf("read back %d bytes that differ from the %d sent", len(got), len(tt.body))
				}
				if err := b.Close(); err != nil {
					t.Fatal(err)
				}
				if open := openIn(t, dir); len(open) != 0 {
					t.Errorf("after Close, still open: %q", open)
				}
			}
		})
	}
}

func TestReadWithoutBody(t *testing.T) {
	for _, tt := range []struct {
		name string
		body io.Reader
	}{
		{"a nil body is an empty one", nil},
		{"http.NoBody is an empty one", http.NoBody},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read(context.Background(), tt.body, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if got, _ := io.ReadAll(b); b.Len() != 0 || len(got) != 0 {
				t.Fatalf("Len() = %d, read %d bytes", b.Len(), len(got))
			}
		})
	}
}

func TestReadLimit(t *testing.T) {
	tests := []struct {
		name   string
		memory int64
		limit  int64
	}{
		{name: "a limit below the memory size is caught in memory", memory: 1 << 10, limit: 100},
		{name: "a limit past the memory size is caught while writing the file", memory: 16, limit: 100 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := &countingReader{r: &pattern{}}
			b, err := Read(context.Background(), src, Options{Memory: tt.memory, Limit: tt.limit, Dir: dir})
			var mbe *http.MaxBytesError
			if !errors.As(err, &mbe) || mbe.Limit != tt.limit {
				t.Fatalf("err = %v (body %v), want a MaxBytesError with limit %d", err, b, tt.limit)
			}
			if src.n != tt.limit+1 {
				t.Errorf("read %d bytes of an endless body, want limit+1 = %d", src.n, tt.limit+1)
			}
			if open := openIn(t, dir); len(open) != 0 {
				t.Errorf("after the failure, still open: %q", open)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestReadCancel(t *testing.T) {
	tests := []struct {
		name        string
		memory      int64
		cancelAfter int // reads
	}{
		{name: "a client gone while the memory part is read stops the copy", memory: 1 << 20, cancelAfter: 3},
		{name: "a client gone while the file is written stops the copy", memory: 16, cancelAfter: 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			src := &pattern{onRead: func(reads int) {
				if reads == tt.cancelAfter {
					cancel()
				}
			}}
			// The body is endless: only the cancellation can end this call.
			_, err := Read(ctx, src, Options{Memory: tt.memory, Dir: dir})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if src.reads != tt.cancelAfter+1 {
				t.Errorf("%d reads, want the copy to stop right after the cancel (%d)", src.reads, tt.cancelAfter+1)
			}
			if open := openIn(t, dir); len(open) != 0 {
				t.Errorf("after the cancel, still open: %q", open)
			}
		})
	}

	t.Run("an already cancelled request reads nothing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		src := &pattern{}
		if _, err := Read(ctx, src, Options{}); !errors.Is(err, context.Canceled) || src.reads != 0 {
			t.Fatalf("err = %v after %d reads", err, src.reads)
		}
	})
}

func TestReadErrors(t *testing.T) {
	reset := errors.New("connection reset")
	isReset := func(err error) bool { return errors.Is(err, reset) }
	tests := []struct {
		name    string
		body    io.Reader
		opts    Options
		want    func(error) bool
		storage bool
	}{
		{name: "a read error in the memory part is the body's own",
			body: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(reset)), opts: Options{Memory: 16}, want: isReset},
		{name: "a read error in the file part is the body's own",
			body: io.MultiReader(strings.NewReader(strings.Repeat("d", 40)), iotest.ErrReader(reset)), opts: Options{Memory: 16}, want: isReset},
		{name: "a body's own MaxBytesError comes back as it is",
			body: http.MaxBytesReader(nil, io.NopCloser(strings.NewReader(strings.Repeat("e", 40))), 20), opts: Options{Memory: 16},
			want: func(err error) bool { var mbe *http.MaxBytesError; return errors.As(err, &mbe) && mbe.Limit == 20 }},
		{name: "a temp dir that does not exist is a storage failure",
			body: strings.NewReader(strings.Repeat("f", 40)), opts: Options{Memory: 16, Dir: "/nonexistent/switchyard-spool"}, storage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Read(context.Background(), tt.body, tt.opts)
			if b != nil || err == nil {
				t.Fatalf("got a body and err %v", err)
			}
			if errors.Is(err, ErrStorage) != tt.storage {
				t.Errorf("err = %v: storage failure %v, want %v", err, errors.Is(err, ErrStorage), tt.storage)
			}
			if tt.want != nil && !tt.want(err) {
				t.Errorf("err = %v, not the expected one", err)
			}
		})
	}
}

func TestBodyClose(t *testing.T) {
	dir := t.TempDir()
	b, err := Read(context.Background(), bytes.NewReader(patternBytes(100)), Options{Memory: 16, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if open := openIn(t, dir); len(open) != 1 {
		t.Fatalf("descriptors into the spool dir = %q, want one", open)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if open := openIn(t, dir); len(open) != 0 {
		t.Errorf("after Close, still open: %q", open)
	}
	if _, err := b.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v, want os.ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("the spool dir holds %d entries", len(ents))
	}
}
