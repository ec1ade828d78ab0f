package httpproxy

import (
	"io"
	"net/http"

	"github.com/switchyard/switchyard/adapters"
)

// The optional capabilities the gateway finds by type assertion: compile-time guards, so a changed
// signature fails the build instead of silently dropping the capability.
var (
	_ http.Handler            = (*Proxy)(nil)
	_ io.Closer               = (*Proxy)(nil)
	_ adapters.HealthReporter = (*Proxy)(nil)
	_ adapters.Reacher        = (*Proxy)(nil)
)
