// Package spool owns reading a request body of unknown length to its end so that its length is known
// before it is handed on: the CGI family (CGI, FastCGI, uwsgi, SCGI) frames a body by CONTENT_LENGTH alone,
// and PHP-FPM hangs on body bytes that arrive without it. A spooled body is held in memory up to a
// threshold and in an unlinked temporary file past it, optionally capped by a size limit.
//
// The package decides nothing about statuses or logging: it reports which side failed (see Read) and the
// adapters map that to their answers.
package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
)

// DefaultMemory is the in-memory part of a spooled body when Options.Memory is not positive.
const DefaultMemory = 1 << 20

// ErrStorage marks a gateway-side failure to hold a body (creating, writing or rewinding the temp file:
// a full disk, say): not the client's fault and not the app's.
var ErrStorage = errors.New("spooling the request body")

// Options say how a body is spooled. The zero value holds 1 MiB in memory, has no limit and uses the
// system's temp directory.
type Options struct {
	// Memory is how many bytes are held in memory before the body moves to a temp file; not positive means
	// DefaultMemory. A body of exactly Memory bytes stays in memory.
	Memory int64
	// Limit is the largest body accepted; 0 means none. A body longer than Limit fails with an error
	// wrapping *http.MaxBytesError (callers answer 413), after reading at most Limit+1 bytes of it.
	Limit int64
	// Dir is where the temp file is created; "" means os.TempDir().
	Dir string
}

// Body is a spooled request body: an io.ReadCloser of known length, read from memory or from an unlinked
// temp file. It is not safe for concurrent use. The caller owns it and must Close it.
type Body struct {
	r    io.Reader
	n    int64
	file *os.File // nil when the body fitted in memory
	// name is the temp file's path while it still has one: only where unlinking an open file fails
	// (Windows), so Close removes it instead.
	name   string
	closed bool
}

// Len is the body's length in bytes, the CONTENT_LENGTH to send.
func (b *Body) Len() int64 { return b.n }

// Read reads the spooled bytes, in the order the client sent them.
func (b *Body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, os.ErrClosed
	}
	return b.r.Read(p)
}

// Close releases the temp file, if any (its disk space goes with the last descriptor). Closing twice is
// harmless.
func (b *Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.file == nil {
		return nil
	}
	err := b.file.Close()
	if b.name != "" {
		if rerr := os.Remove(b.name); err == nil {
			err = rerr
		}
	}
	return err
}

// Read reads body to its end, checking ctx before every read so a cancelled request (the client went
// away mid-upload) stops the copy with ctx's error. A Read already blocked in body is not interrupted:
// the server ends it when it closes the client's connection or stream. A nil body or http.NoBody gives an
// empty Body.
//
// Up to opts.Memory bytes (at most opts.Limit when that is smaller) stay in memory; a longer body goes to
// a temp file in opts.Dir that is unlinked right after its creation, so nothing is left behind even if
// the process dies.
//
// Errors: past opts.Limit, an error wrapping *http.MaxBytesError; a failure of the temp file, an error
// wrapping ErrStorage; otherwise body's own read error (a body that is itself limited may return its own
// *http.MaxBytesError) or ctx's error, unwrapped. On error nothing is left open.
func Read(ctx context.Context, body io.Reader, opts Options) (*Body, error) {
	if body == nil || body == http.NoBody {
		return &Body{r: bytes.NewReader(nil)}, nil
	}
	mem := opts.Memory
	if mem <= 0 {
		mem = DefaultMemory
	}
	src := body
	if opts.Limit > 0 {
		mem = min(mem, opts.Limit)
		src = io.LimitReader(body, opts.Limit+1) // never read more than needed to see the limit passed
	}
	var buf bytes.Buffer
	n, err := copyCtx(ctx, &buf, io.LimitReader(src, mem+1))
	if err != nil {
		return nil, err
	}
	if n <= mem {
		return &Body{r: bytes.NewReader(buf.Bytes()), n: n}, nil
	}
	if opts.Limit > 0 && n > opts.Limit {
		return nil, &http.MaxBytesError{Limit: opts.Limit}
	}

	b, err := tempBody(opts.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := b.file.Write(buf.Bytes()); err != nil {
		b.Close()
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	buf = bytes.Buffer{} // the memory part is on disk now
	m, err := copyCtx(ctx, b.file, src)
	if err != nil {
		b.Close()
		return nil, err
	}
	if opts.Limit > 0 && n+m > opts.Limit {
		b.Close()
		return nil, &http.MaxBytesError{Limit: opts.Limit}
	}
	if _, err := b.file.Seek(0, io.SeekStart); err != nil {
		b.Close()
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	b.r, b.n = b.file, n+m
	return b, nil
}

// tempBody creates the temp file and unlinks it at once; where that is impossible, Close removes it.
func tempBody(dir string) (*Body, error) {
	f, err := os.CreateTemp(dir, "switchyard-body-*")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStorage, err)
	}
	b := &Body{file: f}
	if os.Remove(f.Name()) != nil {
		b.name = f.Name()
	}
	return b, nil
}

// copyCtx copies src to dst until EOF, checking ctx before every read. Write failures wrap ErrStorage;
// read failures and ctx's error come back as they are.
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
				return total, fmt.Errorf("%w: %w", ErrStorage, werr)
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
