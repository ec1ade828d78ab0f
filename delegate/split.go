package delegate

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// DefaultCanaryCookie is the cookie a Split uses when neither Cookie nor Header is set.
const DefaultCanaryCookie = "switchyard_canary"

// Split serves a fixed share of clients with New and the rest with Old (a canary release).
//
// Assignment is sticky and derived from the request alone: the value of the sticky cookie (or header) is
// hashed together with Salt into one of 10,000 buckets, and buckets below Percent*100 go to New. Every
// replica of the gateway therefore puts a client on the same side without sharing state, and raising
// Percent only moves clients from Old to New, never back.
//
// Cookie mode (the default): a request without the cookie gets a fresh random id (128 bits from
// crypto/rand) set with Set-Cookie on the answer, and is assigned by that id, so its next request lands on
// the same side. A client that crafts its own cookie value can choose its side: a canary is a rollout
// tool, not an access control. Header mode (Header set, e.g. a user id header added by an authenticating proxy):
// a request without the header goes to Old, and nothing is set.
//
// Split does not touch the request body; the chosen handler receives the request as it came.
type Split struct {
	New, Old http.Handler
	// Percent is the share for New, 0 to 100 with two decimals of resolution.
	Percent float64
	// Cookie names the sticky cookie; "" means DefaultCanaryCookie unless Header is set.
	Cookie string
	// Header, when set, names the request header that carries the sticky id instead of a cookie.
	Header string
	// Salt makes assignments of different routes independent (the route pattern is a good salt).
	Salt string
	// CookiePath is the Path attribute of a new sticky cookie; "" means "/".
	CookiePath string
}

// Side is where a Split sends a request.
type Side bool

// The two sides of a Split.
const (
	SideOld Side = false
	SideNew Side = true
)

func (s Side) String() string {
	if s == SideNew {
		return "new"
	}
	return "old"
}

// Assign returns the side for r and, in cookie mode when r has no sticky cookie, the new id to set (the
// caller sets it; ServeHTTP does). It is a pure function of r's sticky value, Salt and Percent.
func (s *Split) Assign(r *http.Request) (side Side, newID string) {
	var id string
	if s.Header != "" {
		id = r.Header.Get(s.Header)
		if id == "" {
			return SideOld, ""
		}
	} else {
		if c, err := r.Cookie(s.cookieName()); err == nil && c.Value != "" {
			id = c.Value
		} else {
			newID = randomID()
			id = newID
		}
	}
	return s.SideOf(id), newID
}

// SideOf returns the side for a sticky id.
func (s *Split) SideOf(id string) Side {
	limit := uint64(s.Percent*100 + 0.5)
	return Side(Bucket(s.Salt, id) < limit)
}

// Bucket hashes salt and id into 0..9999 (FNV-1a 64 with a final avalanche mix, stable across processes
// and versions: it decides which side a client is on, so it must never change).
func Bucket(salt, id string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint64(salt[i])) * prime
	}
	h = (h ^ 0xff) * prime // separator: ("ab","c") and ("a","bc") differ
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * prime
	}
	// splitmix64 finaliser: FNV's low bits are weak for short, similar ids.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h % 10000
}

func (s *Split) cookieName() string {
	if s.Cookie != "" {
		return s.Cookie
	}
	return DefaultCanaryCookie
}

// ServeHTTP sends r to the assigned side, setting the sticky cookie first when the client had none.
func (s *Split) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	side, newID := s.Assign(r)
	if newID != "" {
		path := s.CookiePath
		if path == "" {
			path = "/"
		}
		http.SetCookie(w, &http.Cookie{
			Name: s.cookieName(), Value: newID, Path: path, MaxAge: 365 * 24 * 3600,
			HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
		})
	}
	if side == SideNew {
		s.New.ServeHTTP(w, r)
		return
	}
	s.Old.ServeHTTP(w, r)
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// ParseSticky reads a sticky setting: "cookie:NAME" or "header:NAME"; "" means the default cookie.
func ParseSticky(s string) (cookie, header string, ok bool) {
	if s == "" {
		return DefaultCanaryCookie, "", true
	}
	kind, name, found := strings.Cut(s, ":")
	if !found || name == "" || !validToken(name) {
		return "", "", false
	}
	switch strings.ToLower(kind) {
	case "cookie":
		return name, "", true
	case "header":
		return "", http.CanonicalHeaderKey(name), true
	}
	return "", "", false
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
