package middleware

import (
	"fmt"
	"net/http"
	"strconv"
)

// BodyLimit returns middleware limiting request bodies to max bytes (max > 0). A body declared larger by
// Content-Length gets 413 at once, before the application sees anything (http.MaxBytesReader alone would
// start streaming the body to the app first); a body of unknown length (chunked) is cut by
// http.MaxBytesReader at the limit, whose *http.MaxBytesError the adapters answer with 413, and the
// connection is closed after the answer.
func BodyLimit(max int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > max {
				w.Header().Set("Connection", "close")
				http.Error(w, "413 request body larger than "+strconv.FormatInt(max, 10)+" bytes", http.StatusRequestEntityTooLarge)
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				r.Body = http.MaxBytesReader(w, r.Body, max)
			}
			next.ServeHTTP(w, r)
		})
	}
}

func buildBodyLimit(p *params, _ BuildEnv) (func(http.Handler) http.Handler, error) {
	v, err := p.Required("max", "a size such as 10MiB")
	if err != nil {
		return nil, err
	}
	n, err := p.Size("max", 0)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("parameter max=%q: expected a positive size such as 10MiB", v)
	}
	return BodyLimit(n), nil
}
