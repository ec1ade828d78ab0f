package upstream

import (
	"io"

	"github.com/switchyard/switchyard/adapters"
)

// The optional capabilities the gateway finds by type assertion: compile-time guards, so a changed
// signature fails the build instead of silently dropping the capability.
var (
	_ io.Closer               = (*Set)(nil)
	_ adapters.HealthReporter = (*Set)(nil)
	_ io.Closer               = (*Guarded)(nil)
	_ adapters.HealthReporter = (*Guarded)(nil)
)
