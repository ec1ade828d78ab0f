package netconn

import (
	"net"
	"testing"
)

type wrap struct {
	net.Conn
	name string
}

func (w *wrap) NetConn() net.Conn { return w.Conn }

type marked struct{ *wrap }

func TestFindWalksDownToTheFirstMatch(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	inner := &wrap{Conn: a, name: "inner"}
	mid := marked{&wrap{Conn: inner, name: "mid"}}
	outer := &wrap{Conn: mid, name: "outer"}
	for _, tt := range []struct {
		c    net.Conn
		want string // the marked wrapper's name, "" none
	}{{outer, "mid"}, {mid, "mid"}, {inner, ""}, {a, ""}} {
		name := ""
		if got, ok := Find[marked](tt.c); ok {
			name = got.name
		}
		if name != tt.want {
			t.Errorf("Find under %v: %q, want %q", tt.c, name, tt.want)
		}
	}
	if got := Innermost(outer); got != a {
		t.Errorf("Innermost: %v, want the pipe end", got)
	}
	if got := Innermost(a); got != a {
		t.Errorf("Innermost of an unwrapped connection: %v, want itself", got)
	}
}

// loopy wraps itself: the walk ends anyway.
type loopy struct{ net.Conn }

func (l *loopy) NetConn() net.Conn { return l }

func TestAWrapperThatWrapsItselfEndsTheWalk(t *testing.T) {
	l := &loopy{}
	if _, ok := Find[*wrap](l); ok {
		t.Fatal("found a wrapper that is not there")
	}
	if Innermost(l) != l {
		t.Fatal("Innermost of a self-wrapping connection is not itself")
	}
}
