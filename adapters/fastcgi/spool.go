package fastcgi

import (
	"bytes"
	"context"
	"io"
	"os"
)

// spoolMemory is how much of a body of unknown length is held in memory before spooling to a temp file.
const spoolMemory = 1 << 20

// spooled is a request body read to its end so its length is known.
type spooled struct {
	io.Reader
	size int64
	file *os.File // nil when the body fitted in memory
}

// Close removes the temp file, if any.
func (s *spooled) Close() error {
	if s.file == nil {
		return nil
	}
	name := s.file.Name()
	err := s.file.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	return err
}

// spool reads body to its end: up to spoolMemory bytes in memory, the rest in a temp file in dir ("" for
// the system's). PHP-FPM waits for CONTENT_LENGTH bytes and hangs on a body without it, so a chunked
// request body must be measured before the request starts. Reading stops with ctx's error when the
// request is cancelled; the caller owns the result and must Close it.
func spool(ctx context.Context, body io.Reader, dir string) (*spooled, error) {
	var mem bytes.Buffer
	n, err := copyCtx(ctx, &mem, io.LimitReader(body, spoolMemory+1))
	if err != nil {
		return nil, err
	}
	if n <= spoolMemory {
		return &spooled{Reader: bytes.NewReader(mem.Bytes()), size: n}, nil
	}
	f, err := os.CreateTemp(dir, "switchyard-fcgi-body-")
	if err != nil {
		return nil, err
	}
	s := &spooled{file: f}
	if _, err := f.Write(mem.Bytes()); err != nil {
		s.Close()
		return nil, err
	}
	m, err := copyCtx(ctx, f, body)
	if err != nil {
		s.Close()
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.Close()
		return nil, err
	}
	s.size = n + m
	s.Reader = f
	return s, nil
}

// copyCtx copies src to dst until EOF, checking ctx between reads.
func copyCtx(ctx context.Context, dst io.Writer, src io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return total, werr
			}
			total += int64(n)
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
