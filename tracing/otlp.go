//go:build !no_otlp

package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// OTLPBuiltIn reports whether this binary can export spans (false when built with -tags no_otlp).
const OTLPBuiltIn = true

// newExporter builds the OTLP/HTTP (protobuf) span exporter. It is the one place the exporter's module
// (and, through the OTLP protobuf packages, gRPC and grpc-gateway: about half of the binary's dependency
// graph) is imported: the no_otlp build tag leaves it out (see no_otlp.go).
func newExporter(ctx context.Context, s settings) (sdktrace.SpanExporter, error) {
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(s.endpoint)}
	if len(s.headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(s.headers))
	}
	if s.timeout > 0 {
		opts = append(opts, otlptracehttp.WithTimeout(s.timeout))
	}
	if s.gzip {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	} else {
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.NoCompression))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter for %s: %w", s.endpoint, err)
	}
	return exp, nil
}
