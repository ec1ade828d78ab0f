package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"

	"github.com/switchyard/switchyard/internal/appconn"
)

const (
	modeLength  = iota // Content-Length bytes
	modeChunked        // chunked, then a trailer section
	modeEOF            // until the app closes the connection
)

var errBodyClosed = errors.New("h1: read on closed response body")

// body is a response body read straight from the connection's buffered reader. At its clean end the
// connection is released (pooled when reusable); any failure, or Close before the end, closes it.
type body struct {
	t    *Transport
	pc   *pconn
	stop func() bool // ends the context watch
	resp *http.Response
	mode int
	n    int64     // bytes left (modeLength)
	cr   io.Reader // chunk decoder (modeChunked)
	keep bool      // the connection may be reused after the body
	done bool
	err  error // returned by reads once done
	// stall keeps the stall deadline (Transport.ReadTimeout).
	stall appconn.Stall
}

func newChunkedReader(br *bufio.Reader) io.Reader { return httputil.NewChunkedReader(br) }

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, b.err
	}
	b.stall.Renew(b.resp.Request.Context(), b.pc.c)
	switch b.mode {
	case modeLength:
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
		n, err := b.pc.br.Read(p)
		b.n -= int64(n)
		if b.n == 0 {
			b.finish(true, io.EOF)
			return n, io.EOF
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			b.finish(false, b.cause(err))
			return n, b.err
		}
		return n, nil
	case modeChunked:
		n, err := b.cr.Read(p)
		if err == io.EOF {
			if err := b.readTrailer(); err != nil {
				b.finish(false, b.cause(err))
				return n, b.err
			}
			b.finish(true, io.EOF)
			return n, io.EOF
		}
		if err != nil {
			b.finish(false, b.cause(err))
			return n, b.err
		}
		return n, nil
	default:
		n, err := b.pc.br.Read(p)
		if err == io.EOF {
			b.finish(false, io.EOF)
			return n, io.EOF
		}
		if err != nil {
			b.finish(false, b.cause(err))
			return n, b.err
		}
		return n, nil
	}
}

// cause prefers the context's error (client gone, deadline) over the I/O error it provoked, and names a
// stall past ReadTimeout.
func (b *body) cause(err error) error {
	if cerr := b.resp.Request.Context().Err(); cerr != nil {
		return cerr
	}
	if b.stall.Stalled(b.resp.Request.Context(), err) {
		return &StallError{Limit: b.stall.Limit}
	}
	return err
}

// readTrailer reads the trailer section after the last chunk into resp.Trailer.
func (b *body) readTrailer() error {
	sp := getBuf()
	defer putBuf(sp)
	raw, err := readLines(b.pc.br, (*sp)[:0], b.t.maxHead())
	*sp = raw[:0]
	if err != nil {
		return unwrapNoBytes(err)
	}
	if len(raw) <= 2 {
		return nil // no trailer fields
	}
	tr, err := parseFields(string(raw))
	if err != nil {
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = tr
		return nil
	}
	for k, v := range tr {
		b.resp.Trailer[k] = v
	}
	return nil
}

func (b *body) finish(clean bool, err error) {
	b.done = true
	b.err = err
	if clean {
		b.t.release(b.pc, b.stop, b.keep)
	} else {
		b.stop()
		b.pc.c.Close()
	}
}

// Close ends the body; before its clean end that closes the connection.
func (b *body) Close() error {
	if !b.done {
		b.finish(false, errBodyClosed)
	}
	return nil
}
