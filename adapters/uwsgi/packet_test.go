package uwsgi

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/switchyard/switchyard/adapters/cgienv"
)

func TestPacketEncoding(t *testing.T) {
	tests := []struct {
		name    string
		vars    []cgienv.Param
		want    []byte
		wantErr bool
	}{
		{name: "an empty packet is only the header", want: []byte{0, 0, 0, 0}},
		{name: "lengths are little-endian and the size counts the whole block",
			vars: []cgienv.Param{p("A", "xy"), p("", "")},
			want: []byte{0, 11, 0, 0, 1, 0, 'A', 2, 0, 'x', 'y', 0, 0, 0, 0}},
		{name: "a block of exactly 65535 bytes fits", vars: []cgienv.Param{p("K", strings.Repeat("v", 65535-5))}},
		{name: "a block of 65536 bytes is refused", vars: []cgienv.Param{p("K", strings.Repeat("v", 65536-5))}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendPacket(nil, 0, 0, tt.vars)
			if tt.wantErr {
				if !errors.Is(err, ErrVarsTooLarge) || len(got) != 0 {
					t.Fatalf("err = %v, %d bytes written", err, len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("got % x, want % x", got, tt.want)
			}
			_, _, back, err := ReadPacket(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.vars, back); diff != "" && len(tt.vars) > 0 {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeVarsRefusesGarbage(t *testing.T) {
	tests := []struct {
		name  string
		block []byte
	}{
		{name: "a lone length byte", block: []byte{1}},
		{name: "a key running past the block", block: []byte{5, 0, 'a'}},
		{name: "a key without a value", block: []byte{1, 0, 'a'}},
		{name: "a value running past the block", block: []byte{1, 0, 'a', 0xff, 0xff, 'b'}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeVars(tt.block); !errors.Is(err, ErrMalformedVars) {
				t.Fatalf("err = %v, want ErrMalformedVars", err)
			}
		})
	}
}

// FuzzDecodeVars: decoding garbage never panics, never yields more bytes than it was given, and whatever
// decodes re-encodes to exactly the same block.
func FuzzDecodeVars(f *testing.F) {
	good, _ := AppendVars(nil, []cgienv.Param{p("REQUEST_METHOD", "GET"), p("PATH_INFO", "/x")})
	for _, s := range [][]byte{good, {}, {1}, {0, 0, 0, 0}, {0xff, 0xff, 1, 2}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, block []byte) {
		vars, err := DecodeVars(block)
		if err != nil {
			if !errors.Is(err, ErrMalformedVars) {
				t.Fatalf("error %v does not wrap ErrMalformedVars", err)
			}
			return
		}
		if VarsSize(vars) != len(block) {
			t.Fatalf("decoded %d bytes of pairs from a %d-byte block", VarsSize(vars), len(block))
		}
		again, err := AppendVars(nil, vars)
		if err != nil || !bytes.Equal(again, block) {
			t.Fatalf("re-encoding gave % x (%v), want % x", again, err, block)
		}
	})
}

// FuzzVarsRoundTrip: any pairs that fit encode and decode back to themselves.
func FuzzVarsRoundTrip(f *testing.F) {
	f.Add("SCRIPT_NAME", "/app", "HTTP_X", "a\x00b", uint8(0))
	f.Add("", "", "K", strings.Repeat("v", 300), uint8(7))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string, m1 uint8) {
		vars := []cgienv.Param{p(k1, v1), p(k2, v2)}
		pkt, err := AppendPacket(nil, m1, 0, vars)
		if VarsSize(vars) > MaxVarsSize {
			if !errors.Is(err, ErrVarsTooLarge) {
				t.Fatalf("oversize vars: err = %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		gm1, gm2, back, err := ReadPacket(bytes.NewReader(pkt))
		if err != nil || gm1 != m1 || gm2 != 0 {
			t.Fatalf("ReadPacket: %v, modifiers %d %d", err, gm1, gm2)
		}
		if diff := cmp.Diff(vars, back); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

func p(name, value string) cgienv.Param { return cgienv.Param{Name: name, Value: value} }
