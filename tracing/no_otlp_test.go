//go:build no_otlp

package tracing_test

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/tracing"
)

// A binary built without the exporter refuses an OTLP endpoint at start, saying why and what to do,
// and still runs without one.
func TestWithoutTheExporterAnEndpointIsRefused(t *testing.T) {
	_, _, err := tracing.Setup(context.Background(), map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, nil)
	if err == nil || !strings.Contains(err.Error(), "-tags no_otlp") {
		t.Fatalf("err = %v", err)
	}
	if _, shutdown, err := tracing.Setup(context.Background(), map[string]string{}, nil); err != nil {
		t.Fatal(err)
	} else if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
