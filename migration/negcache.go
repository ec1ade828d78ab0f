package migration

import (
	"container/list"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/reqinfo"
)

// NegativeCache remembers requests the new (primary) app passed on in a cascade (answered with a pass
// status such as 404), so that the same request goes straight to the old app for a while, saving the
// round trip to the new one.
//
// A key is the method, the host and the path with its query: a new app that answers 404 for one object
// (/item?id=7) is not taken to miss every object. The cache holds at most Size keys (least recently used
// evicted first) and trusts each for TTL. A reload that leaves the route's migration unchanged (same apps
// as configured, same size and TTL) keeps the cache; one that changes it starts with an empty cache.
type NegativeCache struct {
	size int
	ttl  time.Duration
	now  func() time.Time

	mu sync.Mutex
	ll *list.List // of *negEntry, most recent first
	m  map[string]*list.Element

	saved, remembered atomic.Uint64
}

type negEntry struct {
	key     string
	expires time.Time
}

// NewNegativeCache returns a cache of at most size keys trusted for ttl each; now is the clock (nil:
// time.Now).
func NewNegativeCache(size int, ttl time.Duration, now func() time.Time) *NegativeCache {
	if now == nil {
		now = time.Now
	}
	if size <= 0 {
		size = 1
	}
	return &NegativeCache{size: size, ttl: ttl, now: now, ll: list.New(), m: map[string]*list.Element{}}
}

func negKey(r *http.Request) string {
	return r.Method + " " + strings.ToLower(r.Host) + " " + r.URL.RequestURI()
}

// Known reports whether r is a remembered miss, dropping an expired entry.
func (c *NegativeCache) Known(r *http.Request) bool {
	k := negKey(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return false
	}
	if !c.now().Before(el.Value.(*negEntry).expires) {
		c.ll.Remove(el)
		delete(c.m, k)
		return false
	}
	c.ll.MoveToFront(el)
	return true
}

// Remember records r as a miss of the new app.
func (c *NegativeCache) Remember(r *http.Request) {
	k := negKey(r)
	exp := c.now().Add(c.ttl)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		el.Value.(*negEntry).expires = exp
		c.ll.MoveToFront(el)
		return
	}
	c.m[k] = c.ll.PushFront(&negEntry{key: k, expires: exp})
	c.remembered.Add(1)
	for c.ll.Len() > c.size {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*negEntry).key)
	}
}

// Len is the number of keys held (expired ones included until they are looked up or evicted).
func (c *NegativeCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// Saved is the number of requests sent straight to the old app: round trips to the new app saved.
func (c *NegativeCache) Saved() uint64 { return c.saved.Load() }

// Remembered is the number of misses recorded since the cache was built.
func (c *NegativeCache) Remembered() uint64 { return c.remembered.Load() }

// Handler serves a request with skip (the cascade without the new app) when it is a remembered miss, and
// with full (the cascade starting at the new app, named newApp in reqinfo) otherwise, remembering it when
// the new app passed it on: that is, when reqinfo shows newApp tried first and another app answering, and
// newApp not Unreached (a request the new app never received because it was down is not a miss).
func (c *NegativeCache) Handler(newApp string, full, skip http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c.Known(r) {
			c.saved.Add(1)
			skip.ServeHTTP(w, r)
			return
		}
		info := reqinfo.From(r.Context())
		if info == nil {
			r, info = reqinfo.Attach(r)
		}
		before := len(info.Snapshot().Tried)
		full.ServeHTTP(w, r)
		s := info.Snapshot()
		// A request the new app never received (it was down) says nothing about the path.
		if len(s.Tried) > before+1 && s.Tried[before] == newApp && s.App != newApp && s.Unreached != newApp && r.Context().Err() == nil {
			c.Remember(r)
		}
	})
}
