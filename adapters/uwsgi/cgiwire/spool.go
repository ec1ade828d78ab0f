package cgiwire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// errSpool marks a gateway-side failure to spool a body (disk full): 500, not the app's fault.
var errSpool = errors.New("spooling the request body")

// clientBodyError marks a failure to read the client's request body (the client's fault or the gateway's
// body limit), as opposed to a failure talking to the app.
type clientBodyError struct{ err error }

func (e *clientBodyError) Error() string { return "reading the request body: " + e.err.Error() }
func (e *clientBodyError) Unwrap() error { return e.err }

// spooled is a request body read to its end, held in memory up to a threshold and in an unlinked temp file
// past it. Close releases the file.
type spooled struct {
	io.Reader
	f *os.File
}

func (s *spooled) Close() error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// spool reads body to EOF. Up to mem bytes stay in memory; a longer body goes to a temp file that is unlinked
// at once, so it disappears when closed even if the gateway crashes. Read errors come back as
// *clientBodyError; temp-file errors as plain errors.
func spool(body io.Reader, mem int64) (*spooled, int64, error) {
	var buf bytes.Buffer
	n, err := io.CopyN(&buf, body, mem+1)
	if errors.Is(err, io.EOF) {
		return &spooled{Reader: bytes.NewReader(buf.Bytes())}, n, nil
	}
	if err != nil {
		return nil, 0, &clientBodyError{err}
	}
	f, err := os.CreateTemp("", "switchyard-body-*")
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errSpool, err)
	}
	_ = os.Remove(f.Name())
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %w", errSpool, err)
	}
	chunk := make([]byte, 32<<10)
	for {
		m, rerr := body.Read(chunk)
		if m > 0 {
			if _, werr := f.Write(chunk[:m]); werr != nil {
				f.Close()
				return nil, 0, fmt.Errorf("%w: %w", errSpool, werr)
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			f.Close()
			return nil, 0, &clientBodyError{rerr}
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %w", errSpool, err)
	}
	return &spooled{Reader: f, f: f}, n, nil
}
