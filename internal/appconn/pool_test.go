package appconn

import (
	"slices"
	"sync"
	"testing"
	"time"
)

type closed struct {
	mu  sync.Mutex
	ids []int
}

func (c *closed) close(id int) { c.mu.Lock(); c.ids = append(c.ids, id); c.mu.Unlock() }
func (c *closed) list() []int  { c.mu.Lock(); defer c.mu.Unlock(); return slices.Clone(c.ids) }

func TestPool(t *testing.T) {
	t.Run("most recent first, at most Max kept, the rest closed", func(t *testing.T) {
		var cl closed
		p := &Pool[int]{Max: 2, CloseConn: cl.close}
		p.Put(1)
		p.Put(2)
		p.Put(3) // full: closed
		if got, ok := p.Get(); !ok || got != 2 {
			t.Fatalf("Get = %d %v, want 2", got, ok)
		}
		if got, ok := p.Get(); !ok || got != 1 {
			t.Fatalf("Get = %d %v, want 1", got, ok)
		}
		if _, ok := p.Get(); ok {
			t.Fatal("Get from an empty pool")
		}
		if got := cl.list(); !slices.Equal(got, []int{3}) {
			t.Fatalf("closed %v", got)
		}
	})
	t.Run("expired connections are closed, never returned", func(t *testing.T) {
		var cl closed
		p := &Pool[int]{Max: 4, IdleTimeout: 30 * time.Millisecond, CloseConn: cl.close}
		defer p.Close()
		p.Put(1)
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Equal(cl.list(), []int{1}) { // the sweep timer closes it without any use of the pool
			if time.Now().After(deadline) {
				t.Fatalf("closed %v: the idle connection outlived its timeout", cl.list())
			}
			time.Sleep(5 * time.Millisecond) // polling a timer's effect; nothing to wait on
		}
		if p.Len() != 0 {
			t.Fatalf("Len = %d", p.Len())
		}
	})
	t.Run("Close closes what waits and every later Put", func(t *testing.T) {
		var cl closed
		p := &Pool[int]{Max: 4, CloseConn: cl.close}
		p.Put(1)
		p.Close()
		p.Put(2)
		if got := cl.list(); !slices.Equal(got, []int{1, 2}) || !p.Closed() {
			t.Fatalf("closed %v", got)
		}
	})
	t.Run("no Max keeps nothing", func(t *testing.T) {
		var cl closed
		p := &Pool[int]{CloseConn: cl.close}
		p.Put(1)
		if _, ok := p.Get(); ok || !slices.Equal(cl.list(), []int{1}) {
			t.Fatal("a pool without Max kept a connection")
		}
	})
}
