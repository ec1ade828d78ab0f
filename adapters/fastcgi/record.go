package fastcgi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FastCGI 1.0 wire constants (FastCGI Specification, Open Market 1996).
const (
	version1 = 1

	typeBeginRequest    = 1
	typeAbortRequest    = 2
	typeEndRequest      = 3
	typeParams          = 4
	typeStdin           = 5
	typeStdout          = 6
	typeStderr          = 7
	typeData            = 8
	typeGetValues       = 9
	typeGetValuesResult = 10
	typeUnknownType     = 11

	roleResponder = 1
	flagKeepConn  = 1

	statusRequestComplete = 0
	statusCantMpxConn     = 1
	statusOverloaded      = 2
	statusUnknownRole     = 3

	headerLen = 8
	// maxContent is the largest content a record can carry (the length field is 16 bits).
	maxContent = 65535
)

// ErrProtocol is wrapped by every error caused by bytes the application sent that break the FastCGI
// protocol (wrong version, a record for another request, an END_REQUEST with a bad length, ...).
var ErrProtocol = errors.New("fastcgi protocol error")

// header is a record header.
type header struct {
	Version       uint8
	Type          uint8
	ID            uint16
	ContentLength uint16
	PaddingLength uint8
}

func (h header) encode(b []byte) {
	b[0] = h.Version
	b[1] = h.Type
	binary.BigEndian.PutUint16(b[2:4], h.ID)
	binary.BigEndian.PutUint16(b[4:6], h.ContentLength)
	b[6] = h.PaddingLength
	b[7] = 0
}

// padding returns the padding that aligns n content bytes to 8, as the specification recommends.
func padding(n int) int { return -n & 7 }

var zeros [8]byte

// writeRecord writes one record with content (at most maxContent bytes) to w, padded to a multiple of 8.
func writeRecord(w *bufio.Writer, typ uint8, id uint16, content []byte) error {
	if len(content) > maxContent {
		return fmt.Errorf("fastcgi: record content of %d bytes exceeds %d", len(content), maxContent)
	}
	var hb [headerLen]byte
	pad := padding(len(content))
	header{Version: version1, Type: typ, ID: id, ContentLength: uint16(len(content)), PaddingLength: uint8(pad)}.encode(hb[:])
	if _, err := w.Write(hb[:]); err != nil {
		return err
	}
	if _, err := w.Write(content); err != nil {
		return err
	}
	_, err := w.Write(zeros[:pad])
	return err
}

// writeBeginRequest writes a BEGIN_REQUEST record for the responder role.
func writeBeginRequest(w *bufio.Writer, id uint16, keepConn bool) error {
	var b [8]byte
	binary.BigEndian.PutUint16(b[0:2], roleResponder)
	if keepConn {
		b[2] = flagKeepConn
	}
	return writeRecord(w, typeBeginRequest, id, b[:])
}

// recordReader reads records from a stream. Next moves to the following record, skipping whatever is left
// of the current one; Read reads the current record's content and returns io.EOF at its end. It never
// allocates per record and never trusts a length beyond the 16-bit and 8-bit fields that bound it.
type recordReader struct {
	br        *bufio.Reader
	hdr       header
	remaining int // content bytes of the current record not yet read
	pad       int // padding bytes of the current record not yet skipped
}

// Next skips the rest of the current record and reads the next header. A clean end of stream before a
// header is io.EOF; an end inside a header is io.ErrUnexpectedEOF; a version other than 1 is ErrProtocol.
func (rr *recordReader) Next() (header, error) {
	if n := rr.remaining + rr.pad; n > 0 {
		if _, err := rr.br.Discard(n); err != nil {
			return header{}, noEOF(err)
		}
		rr.remaining, rr.pad = 0, 0
	}
	var b [headerLen]byte
	if _, err := io.ReadFull(rr.br, b[:]); err != nil {
		return header{}, err
	}
	h := header{
		Version:       b[0],
		Type:          b[1],
		ID:            binary.BigEndian.Uint16(b[2:4]),
		ContentLength: binary.BigEndian.Uint16(b[4:6]),
		PaddingLength: b[6],
	}
	if h.Version != version1 {
		return header{}, fmt.Errorf("%w: record version %d, want 1", ErrProtocol, h.Version)
	}
	rr.hdr = h
	rr.remaining = int(h.ContentLength)
	rr.pad = int(h.PaddingLength)
	return h, nil
}

// Read reads content of the current record.
func (rr *recordReader) Read(p []byte) (int, error) {
	if rr.remaining == 0 {
		return 0, io.EOF
	}
	if len(p) > rr.remaining {
		p = p[:rr.remaining]
	}
	n, err := rr.br.Read(p)
	rr.remaining -= n
	if err != nil {
		return n, noEOF(err)
	}
	return n, nil
}

// Buffered reports whether reading on will not block: some content of the current record is in memory,
// or, at the end of its content, the padding and the next header are.
func (rr *recordReader) Buffered() bool {
	if rr.remaining > 0 {
		return rr.br.Buffered() > 0
	}
	return rr.br.Buffered() >= rr.pad+headerLen
}

// readContent reads the whole content of the current record (at most maxContent bytes) into buf.
func (rr *recordReader) readContent(buf []byte) ([]byte, error) {
	buf = buf[:0]
	if cap(buf) < rr.remaining {
		buf = make([]byte, 0, rr.remaining)
	}
	buf = buf[:rr.remaining]
	if _, err := io.ReadFull(rr, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// endRequest is the body of an END_REQUEST record.
type endRequest struct {
	AppStatus      uint32
	ProtocolStatus uint8
}

func parseEndRequest(b []byte) (endRequest, error) {
	if len(b) != 8 {
		return endRequest{}, fmt.Errorf("%w: END_REQUEST body of %d bytes, want 8", ErrProtocol, len(b))
	}
	return endRequest{AppStatus: binary.BigEndian.Uint32(b[0:4]), ProtocolStatus: b[4]}, nil
}

func (e endRequest) String() string {
	switch e.ProtocolStatus {
	case statusRequestComplete:
		return fmt.Sprintf("request complete (app status %d)", e.AppStatus)
	case statusCantMpxConn:
		return "the application cannot multiplex connections"
	case statusOverloaded:
		return "the application is overloaded"
	case statusUnknownRole:
		return "the application does not know the responder role"
	}
	return fmt.Sprintf("unknown protocol status %d", e.ProtocolStatus)
}

// appendLength appends a name-value length: one byte below 128, else four bytes with the top bit set.
func appendLength(b []byte, n int) []byte {
	if n < 128 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
}

// appendPair appends one name-value pair in FastCGI encoding.
func appendPair(b []byte, name, value string) []byte {
	b = appendLength(b, len(name))
	b = appendLength(b, len(value))
	b = append(b, name...)
	return append(b, value...)
}

// pairLen is the encoded size of one pair.
func pairLen(name, value string) int {
	n := len(name) + len(value) + 2
	if len(name) >= 128 {
		n += 3
	}
	if len(value) >= 128 {
		n += 3
	}
	return n
}

// readLength decodes one length from b, returning it and the bytes used (0 when b is too short).
func readLength(b []byte) (int, int) {
	if len(b) == 0 {
		return 0, 0
	}
	if b[0]&0x80 == 0 {
		return int(b[0]), 1
	}
	if len(b) < 4 {
		return 0, 0
	}
	return int(binary.BigEndian.Uint32(b) &^ (1 << 31)), 4
}

// decodePairs decodes a complete name-value pair stream (the concatenated content of PARAMS or
// GET_VALUES records). Lengths are checked against the bytes present before anything is sliced, so
// garbage gives ErrProtocol, never a panic or a large allocation.
func decodePairs(b []byte) ([][2]string, error) {
	var out [][2]string
	for len(b) > 0 {
		nl, u1 := readLength(b)
		if u1 == 0 {
			return nil, fmt.Errorf("%w: truncated name length", ErrProtocol)
		}
		b = b[u1:]
		vl, u2 := readLength(b)
		if u2 == 0 {
			return nil, fmt.Errorf("%w: truncated value length", ErrProtocol)
		}
		b = b[u2:]
		if nl > len(b) || vl > len(b)-nl {
			return nil, fmt.Errorf("%w: pair of %d+%d bytes with %d left", ErrProtocol, nl, vl, len(b))
		}
		out = append(out, [2]string{string(b[:nl]), string(b[nl : nl+vl])})
		b = b[nl+vl:]
	}
	return out, nil
}
