package delegate

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
)

func withoutChi(r *http.Request) context.Context {
	return context.WithValue(r.Context(), chi.RouteCtxKey, nil)
}
