package delegate

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

// FallThrough makes r hand every request it has no route for to next: the in-process form of "a custom
// application that delegates to the Django application". Unlike a Cascade it never looks at statuses: a
// request that matches one of r's routes is r's, whatever it answers; one that matches none (no pattern, or
// a pattern without that method) is next's. next sees the request unchanged, with chi's routing state
// removed so that a chi router given as next routes on the full path itself.
func FallThrough(r chi.Router, next http.Handler) {
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if rctx := chi.RouteContext(req.Context()); rctx != nil {
			req = req.WithContext(withoutChi(req))
		}
		next.ServeHTTP(w, req)
	})
	r.NotFound(h)
	r.MethodNotAllowed(h)
}
