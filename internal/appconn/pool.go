package appconn

import (
	"sync"
	"time"
)

// Pool keeps idle keep-alive connections to one app, most recently used first (the most likely alive
// and warm). Connections idle for longer than IdleTimeout are closed: when the pool is next used, and by
// one timer while any wait, so an idle app is not held open forever. Its zero value needs Close set.
// Whether a connection taken from the pool can still carry a request is its user's check (connpeek).
type Pool[C any] struct {
	// Max is the number of idle connections kept; 0 or less keeps none.
	Max int
	// IdleTimeout closes connections idle for longer; 0 or less: never by age.
	IdleTimeout time.Duration
	// CloseConn closes a connection the pool drops. Required.
	CloseConn func(C)

	mu     sync.Mutex
	idle   []idleConn[C] // oldest first
	closed bool
	sweep  *time.Timer
	armed  bool
}

type idleConn[C any] struct {
	c  C
	at time.Time
}

// Get returns the most recently put connection that has not expired; ok is false when none waits.
func (p *Pool[C]) Get() (c C, ok bool) {
	now := time.Now()
	var stale []C
	p.mu.Lock()
	for len(p.idle) > 0 {
		n := len(p.idle) - 1
		ic := p.idle[n]
		p.idle[n] = idleConn[C]{}
		p.idle = p.idle[:n]
		if p.expired(now, ic.at) {
			stale = append(stale, ic.c)
			continue
		}
		c, ok = ic.c, true
		break
	}
	p.mu.Unlock()
	for _, s := range stale {
		p.CloseConn(s)
	}
	return c, ok
}

func (p *Pool[C]) expired(now, at time.Time) bool {
	return p.IdleTimeout > 0 && now.Sub(at) > p.IdleTimeout
}

// Put keeps c for a later Get, or closes it when the pool is full or closed.
func (p *Pool[C]) Put(c C) {
	now := time.Now()
	p.mu.Lock()
	if p.closed || p.Max <= 0 || len(p.idle) >= p.Max {
		p.mu.Unlock()
		p.CloseConn(c)
		return
	}
	var stale []C
	for len(p.idle) > 0 && p.expired(now, p.idle[0].at) {
		stale = append(stale, p.idle[0].c)
		copy(p.idle, p.idle[1:])
		p.idle[len(p.idle)-1] = idleConn[C]{}
		p.idle = p.idle[:len(p.idle)-1]
	}
	p.idle = append(p.idle, idleConn[C]{c: c, at: now})
	if !p.armed && p.IdleTimeout > 0 {
		p.armed = true
		if p.sweep == nil {
			p.sweep = time.AfterFunc(p.IdleTimeout, p.sweepIdle)
		} else {
			p.sweep.Reset(p.IdleTimeout)
		}
	}
	p.mu.Unlock()
	for _, s := range stale {
		p.CloseConn(s)
	}
}

// sweepIdle closes connections past the idle timeout and re-arms while any stay idle.
func (p *Pool[C]) sweepIdle() {
	now := time.Now()
	var stale []C
	p.mu.Lock()
	keep := p.idle[:0]
	for _, ic := range p.idle {
		if p.expired(now, ic.at) {
			stale = append(stale, ic.c)
		} else {
			keep = append(keep, ic)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.armed = len(p.idle) > 0 && !p.closed
	if p.armed {
		p.sweep.Reset(p.IdleTimeout)
	}
	p.mu.Unlock()
	for _, s := range stale {
		p.CloseConn(s)
	}
}

// Len is the number of idle connections.
func (p *Pool[C]) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// CloseIdle closes the idle connections; the pool stays usable.
func (p *Pool[C]) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if p.sweep != nil {
		p.sweep.Stop()
		p.armed = false
	}
	p.mu.Unlock()
	for _, ic := range idle {
		p.CloseConn(ic.c)
	}
}

// Close closes the idle connections and makes every later Put close its connection.
func (p *Pool[C]) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseIdle()
}

// Closed reports whether Close was called.
func (p *Pool[C]) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}
