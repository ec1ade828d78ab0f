package static

import (
	"io"
	"net/http"
)

// The optional capabilities the gateway finds by type assertion: compile-time guards.
var (
	_ http.Handler = (*Handler)(nil)
	_ io.Closer    = (*Handler)(nil)
)
