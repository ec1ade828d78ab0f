package delegate_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"

	"github.com/switchyard/switchyard/delegate"
)

// A new chi application takes over two endpoints of an old one; FallThrough hands it everything else,
// including a known path asked with a method the new application does not route.
func ExampleFallThrough() {
	legacy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "legacy %s %s", r.Method, r.URL.Path)
	})
	app := chi.NewRouter()
	app.Get("/api/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "new user %s", chi.URLParam(r, "id"))
	})
	delegate.FallThrough(app, legacy)

	for _, req := range []struct{ method, path string }{
		{"GET", "/api/users/7"},
		{"DELETE", "/api/users/7"},
		{"GET", "/admin/"},
	} {
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, httptest.NewRequest(req.method, req.path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		fmt.Printf("%s %s -> %s\n", req.method, req.path, body)
	}
	// Output:
	// GET /api/users/7 -> new user 7
	// DELETE /api/users/7 -> legacy DELETE /api/users/7
	// GET /admin/ -> legacy GET /admin/
}
