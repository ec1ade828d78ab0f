package middleware

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

// RequestIDHeader carries the request id to applications and back to the client.
const RequestIDHeader = "X-Request-Id"

// RequestID returns middleware that gives every request an id in X-Request-Id, sent on to the application
// and echoed in the response. A client-supplied id is kept when it is 1 to 64 characters of [A-Za-z0-9._-]
// (so it can correlate a client's retries), and replaced otherwise, so no log line can be forged through it.
func RequestID() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get(RequestIDHeader)
			if !validID(id) {
				var b [12]byte
				var x [24]byte
				_, _ = rand.Read(b[:])
				hex.Encode(x[:], b[:])
				id = string(x[:])
				// One allocation for both header values (separate slices: an app changing its request's
				// value cannot change the response's).
				vals := &[2]string{id, id}
				r.Header[RequestIDHeader] = vals[0:1:1]
				w.Header()[RequestIDHeader] = vals[1:2:2]
			} else {
				w.Header()[RequestIDHeader] = []string{id}
			}
			next.ServeHTTP(w, r)
		})
	}
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
