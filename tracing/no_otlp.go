//go:build no_otlp

package tracing

import (
	"context"
	"fmt"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// OTLPBuiltIn reports whether this binary can export spans (false when built with -tags no_otlp).
const OTLPBuiltIn = false

// newExporter refuses: this binary was built without the OTLP exporter (-tags no_otlp), so an OTLP
// endpoint cannot be honoured. The start fails with this error rather than silently tracing nowhere.
func newExporter(_ context.Context, s settings) (sdktrace.SpanExporter, error) {
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_ENDPOINT (%s): this gateway was built with -tags no_otlp, without the OTLP trace exporter; rebuild without the tag (go build ./cmd/gateway) or unset the variable", s.endpoint)
}
