package upstream

import (
	"math/rand/v2"
	"net/http"
	"sync/atomic"
)

// policy picks one of cands, a non-empty list of available instances in configured order. Policies are
// safe for concurrent use.
type policy interface {
	pick(r *http.Request, cands []*Instance) *Instance
}

func newPolicy(c Config) policy {
	switch c.Policy {
	case "least_requests":
		return &leastRequests{}
	case "p2c":
		return p2c{}
	case "hash":
		return &hashPolicy{key: c.HashKey}
	case "first":
		return first{}
	}
	return &roundRobin{}
}

// roundRobin takes the candidates in turn.
type roundRobin struct{ n atomic.Uint64 }

func (p *roundRobin) pick(_ *http.Request, cands []*Instance) *Instance {
	return cands[(p.n.Add(1)-1)%uint64(len(cands))]
}

// leastRequests takes the candidate with the fewest requests in flight; ties go round robin, so an idle
// set is still spread evenly.
type leastRequests struct{ n atomic.Uint64 }

func (p *leastRequests) pick(_ *http.Request, cands []*Instance) *Instance {
	start := int((p.n.Add(1) - 1) % uint64(len(cands)))
	best := cands[start]
	bestN := best.inflight.Load()
	for i := 1; i < len(cands); i++ {
		in := cands[(start+i)%len(cands)]
		if n := in.inflight.Load(); n < bestN {
			best, bestN = in, n
		}
	}
	return best
}

// p2c (power of two random choices) takes the less loaded of two candidates drawn at random: nearly the
// balance of least_requests without every picker converging on the same instance.
type p2c struct{}

func (p2c) pick(_ *http.Request, cands []*Instance) *Instance {
	if len(cands) == 1 {
		return cands[0]
	}
	i := rand.IntN(len(cands))
	j := rand.IntN(len(cands) - 1)
	if j >= i {
		j++
	}
	a, b := cands[i], cands[j]
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// hashPolicy sends requests with the same key to the same instance (rendezvous hashing); requests without
// a key go round robin.
type hashPolicy struct {
	key HashKey
	rr  roundRobin
}

func (p *hashPolicy) pick(r *http.Request, cands []*Instance) *Instance {
	k, ok := p.key.Key(r)
	if !ok {
		return p.rr.pick(r, cands)
	}
	return rendezvous(k, cands)
}

// first takes the first available instance in configured order: the others are failovers.
type first struct{}

func (first) pick(_ *http.Request, cands []*Instance) *Instance { return cands[0] }
