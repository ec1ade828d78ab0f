// Package exact owns the reader that holds a byte stream to its declared length: the CGI-family adapters use
// it where a length was announced (a request body sent with CONTENT_LENGTH, a response with Content-Length),
// so that a stream cut short is an error rather than an answer that looks complete.
package exact

import "io"

// Reader returns a reader yielding exactly n bytes of r: it stops at n (what follows in r is left unread),
// and fails with io.ErrUnexpectedEOF when r ends first. io.EOF may come with the last bytes.
func Reader(r io.Reader, n int64) io.Reader { return &reader{r: r, left: n} }

type reader struct {
	r    io.Reader
	left int64
}

func (e *reader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if e.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}
