package middleware

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"sync"
	"unsafe"
)

// RequestIDHeader carries the request id to applications and back to the client.
const RequestIDHeader = "X-Request-Id"

// RequestID returns middleware that gives every request an id in X-Request-Id, sent on to the application
// and echoed in the response. A client-supplied id is kept when it is 1 to 64 characters of [A-Za-z0-9._-]
// (so it can correlate a client's retries), and replaced otherwise, so no log line can be forged through it.
// A new id is 24 lowercase hex digits (96 random bits) from a ChaCha8 generator seeded from crypto/rand:
// as unpredictable as crypto/rand's own output, without its system call per request.
func RequestID() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// RequestIDHeader is canonical: the map is read directly, without Header.Get's canonicalising.
			id := first(r.Header[RequestIDHeader])
			if !validID(id) {
				// One allocation for the id and both header values (separate slices: an app changing its
				// request's value cannot change the response's).
				n := new(newID)
				n.fill()
				id = unsafe.String(&n.hex[0], len(n.hex)) // n.hex is never written again
				n.vals = [2]string{id, id}
				r.Header[RequestIDHeader] = n.vals[0:1:1]
				w.Header()[RequestIDHeader] = n.vals[1:2:2]
			} else {
				w.Header()[RequestIDHeader] = []string{id}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// newID holds a fresh id: its text and the two header values that share it.
type newID struct {
	vals [2]string
	hex  [24]byte
}

// idSources are ChaCha8 generators (cryptographically strong, not safe for concurrent use), each seeded
// from crypto/rand when the pool makes it.
var idSources = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails: crypto/rand crashes the program rather than return short output
	return rand.NewChaCha8(seed)
}}

// fill writes 96 random bits into n.hex, as hex.
func (n *newID) fill() {
	src := idSources.Get().(*rand.ChaCha8)
	a, b := src.Uint64(), src.Uint64()
	idSources.Put(src)
	var raw [12]byte
	binary.LittleEndian.PutUint64(raw[:8], a)
	binary.LittleEndian.PutUint32(raw[8:], uint32(b))
	hex.Encode(n.hex[:], raw[:])
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// AppendRequestID appends a fresh request id to b, as RequestID makes one for a request without a valid
// id.
func AppendRequestID(b []byte) []byte {
	var n newID
	n.fill()
	return append(b, n.hex[:]...)
}

// ValidRequestID reports whether RequestID keeps a client's id.
func ValidRequestID(s string) bool { return validID(s) }
