package cgiwire

import (
	"io"
	"net/http"

	"github.com/switchyard/switchyard/adapters"
)

// The optional capabilities the gateway finds by type assertion: compile-time guards, so a changed
// signature fails the build instead of silently dropping the capability.
var (
	_ http.Handler            = (*Handler)(nil)
	_ io.Closer               = (*Handler)(nil)
	_ adapters.HealthReporter = (*Handler)(nil)
	_ adapters.Reacher        = (*Handler)(nil)
)
