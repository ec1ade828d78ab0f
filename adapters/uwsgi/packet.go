package uwsgi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/switchyard/switchyard/adapters/cgienv"
	"github.com/switchyard/switchyard/adapters/cgiwire"
)

// MaxVarsSize is the largest vars block a packet can carry: its size travels in 16 bits. uWSGI further
// refuses blocks larger than its --buffer-size (4096 by default).
const MaxVarsSize = 0xFFFF

// HeaderSize is the length of a packet header: modifier1, the vars size (u16 little-endian), modifier2.
const HeaderSize = 4

// ErrVarsTooLarge is returned when the variables do not fit MaxVarsSize. It wraps cgiwire.ErrVarsTooLarge.
var ErrVarsTooLarge = fmt.Errorf("uwsgi: %w (limit %d bytes)", cgiwire.ErrVarsTooLarge, MaxVarsSize)

// ErrMalformedVars is wrapped by every DecodeVars and ReadPacket error caused by the bytes themselves.
var ErrMalformedVars = errors.New("uwsgi: malformed vars block")

// VarsSize returns the encoded size of vars' block: 4 bytes of lengths plus the key and value per pair.
func VarsSize(vars []cgienv.Param) int {
	n := 0
	for _, v := range vars {
		n += 4 + len(v.Name) + len(v.Value)
	}
	return n
}

// AppendVars appends the vars block for vars to dst: for each pair, the key's length (u16 LE), the key,
// the value's length (u16 LE), the value. It fails with ErrVarsTooLarge, leaving dst unchanged, when the
// block would exceed MaxVarsSize (which also bounds every single key and value).
func AppendVars(dst []byte, vars []cgienv.Param) ([]byte, error) {
	size := VarsSize(vars)
	if size > MaxVarsSize {
		return dst, fmt.Errorf("%w: %d bytes", ErrVarsTooLarge, size)
	}
	for _, v := range vars {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(v.Name)))
		dst = append(dst, v.Name...)
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(v.Value)))
		dst = append(dst, v.Value...)
	}
	return dst, nil
}

// AppendPacket appends a complete request packet header and vars block (what precedes the body) to dst.
func AppendPacket(dst []byte, modifier1, modifier2 uint8, vars []cgienv.Param) ([]byte, error) {
	size := VarsSize(vars)
	if size > MaxVarsSize {
		return dst, fmt.Errorf("%w: %d bytes", ErrVarsTooLarge, size)
	}
	dst = append(dst, modifier1)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(size))
	dst = append(dst, modifier2)
	return AppendVars(dst, vars)
}

// DecodeVars parses a vars block. Every key and value must fit inside block: the result never holds more
// bytes than block itself, so garbage cannot make it allocate beyond len(block).
func DecodeVars(block []byte) ([]cgienv.Param, error) {
	if len(block) > MaxVarsSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit", ErrMalformedVars, len(block), MaxVarsSize)
	}
	var out []cgienv.Param
	for off := 0; off < len(block); {
		name, next, err := lengthPrefixed(block, off, "key")
		if err != nil {
			return nil, err
		}
		value, next, err := lengthPrefixed(block, next, "value")
		if err != nil {
			return nil, err
		}
		out = append(out, cgienv.Param{Name: string(name), Value: string(value)})
		off = next
	}
	return out, nil
}

func lengthPrefixed(b []byte, off int, what string) ([]byte, int, error) {
	if len(b)-off < 2 {
		return nil, 0, fmt.Errorf("%w: %s length cut short at offset %d", ErrMalformedVars, what, off)
	}
	n := int(binary.LittleEndian.Uint16(b[off:]))
	off += 2
	if len(b)-off < n {
		return nil, 0, fmt.Errorf("%w: %s of %d bytes at offset %d runs past the block", ErrMalformedVars, what, n, off)
	}
	return b[off : off+n], off + n, nil
}

// ReadPacket reads a request packet header and its vars block from r (what a uWSGI server reads before the
// body), leaving r at the first body byte. It allocates at most MaxVarsSize bytes.
func ReadPacket(r io.Reader) (modifier1, modifier2 uint8, vars []cgienv.Param, err error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, 0, nil, fmt.Errorf("%w: reading the header: %v", ErrMalformedVars, err)
	}
	block := make([]byte, binary.LittleEndian.Uint16(hdr[1:3]))
	if _, err := io.ReadFull(r, block); err != nil {
		return 0, 0, nil, fmt.Errorf("%w: reading %d bytes of vars: %v", ErrMalformedVars, len(block), err)
	}
	vars, err = DecodeVars(block)
	return hdr[0], hdr[3], vars, err
}
