package upstream

import (
	"fmt"
	"net/http"
	"strings"
)

// HashKey says where the hash policy finds a request's key: a request header or a cookie.
type HashKey struct {
	// Cookie is true for a cookie, false for a header.
	Cookie bool
	// Name is the header (canonicalised) or cookie name.
	Name string
}

// ParseHashKey parses "header:X-User" or "cookie:session".
func ParseHashKey(s string) (HashKey, error) {
	kind, name, ok := strings.Cut(s, ":")
	if ok && name != "" && validToken(name) {
		switch strings.ToLower(kind) {
		case "header":
			return HashKey{Name: http.CanonicalHeaderKey(name)}, nil
		case "cookie":
			return HashKey{Cookie: true, Name: name}, nil
		}
	}
	return HashKey{}, fmt.Errorf("option hash_key=%q: expected header:NAME or cookie:NAME", s)
}

// validToken reports whether s is a non-empty RFC 9110 token (header and cookie names).
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return s != ""
}

// Key returns the request's key and whether it has one.
func (k HashKey) Key(r *http.Request) (string, bool) {
	if k.Cookie {
		c, err := r.Cookie(k.Name)
		if err != nil || c.Value == "" {
			return "", false
		}
		return c.Value, true
	}
	v := r.Header.Get(k.Name)
	return v, v != ""
}

// hashString is 64-bit FNV-1a.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is the splitmix64 finaliser: it spreads the bits of a combined key and instance hash so that
// rendezvous scores of one key are independent across instances.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rendezvous returns the candidate with the highest score for key (highest random weight hashing): a key
// always goes to the same instance while that instance is available, and when one instance leaves, only
// the keys it held move (each to its own next-highest instance).
func rendezvous(key string, cands []*Instance) *Instance {
	kh := hashString(key)
	var best *Instance
	var bestScore uint64
	for _, in := range cands {
		if s := mix(kh ^ in.hash); best == nil || s > bestScore {
			best, bestScore = in, s
		}
	}
	return best
}
