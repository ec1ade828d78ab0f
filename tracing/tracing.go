// Package tracing owns the gateway's OpenTelemetry tracing: reading the standard OTEL_* variables, building
// a TracerProvider that exports spans over OTLP/HTTP (protobuf), and the middleware that opens a server span
// per request and hands the W3C trace context (traceparent, tracestate, baggage) on to every application.
//
// Tracing is off unless OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set. Off means
// zero cost: Middleware returns its handler unchanged, and a client's traceparent header reaches the apps
// untouched like any other header.
//
// Nothing here touches OpenTelemetry's process-global state (otel.SetTracerProvider,
// otel.SetTextMapPropagator, the global meter provider): the provider and propagator are explicit values,
// so two gateways in one process can trace to two collectors.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultServiceName is the service.name of the gateway's spans when neither OTEL_SERVICE_NAME nor a
// service.name in OTEL_RESOURCE_ATTRIBUTES names it.
const DefaultServiceName = "switchyard-gateway"

// Propagator returns the gateway's propagator: W3C trace context and W3C baggage. It is a fresh value, not
// the process-global one.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Setup builds the tracer provider that environ (the process environment as a map) asks for. Setup decides
// everything from environ, so tests stay hermetic; only defaults it leaves to the OpenTelemetry libraries
// come from the process environment (the SDK merges the process's OTEL_RESOURCE_ATTRIBUTES under the
// resource built here, and the exporter reads its TLS variables, OTEL_EXPORTER_OTLP_CERTIFICATE ...).
//
// With no OTLP endpoint set, or OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none, it returns a no-op
// provider and a shutdown that does nothing. Otherwise the provider batches spans (OTEL_BSP_* tune the
// batch) and exports them over OTLP/HTTP with protobuf to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is)
// or OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces"; OTEL_EXPORTER_OTLP_[TRACES_]HEADERS, _TIMEOUT and
// _COMPRESSION are honoured, the resource carries service.name (OTEL_SERVICE_NAME, default
// DefaultServiceName) and OTEL_RESOURCE_ATTRIBUTES, and OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG choose
// the sampler (default parentbased_always_on).
//
// Every invalid value is reported at once in err, naming its variable; nothing is started then. Export
// failures are logged on logger (at most one line a minute) instead of OpenTelemetry's global error
// handler. shutdown flushes the spans still queued and stops the exporter; call it once, after the server
// has drained, with a context that bounds the flush.
func Setup(ctx context.Context, environ map[string]string, logger *slog.Logger) (provider trace.TracerProvider, shutdown func(context.Context) error, err error) {
	if logger == nil {
		logger = slog.Default()
	}
	off := func() (trace.TracerProvider, func(context.Context) error, error) {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	s, err := parseSettings(environ)
	if err != nil {
		return nil, nil, err
	}
	if s.endpoint == "" {
		return off()
	}
	exp, err := newExporter(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	res, err := resource.New(ctx, resource.WithAttributes(s.resource...))
	if err != nil {
		return nil, nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, logger: logger, endpoint: s.endpoint}, s.batch...),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(s.sampler),
	)
	logger.Info("tracing: exporting spans over OTLP/HTTP", "endpoint", s.endpoint, "service", s.service, "sampler", s.sampler.Description())
	return tp, tp.Shutdown, nil
}

// settings is what the OTEL_* variables say, validated.
type settings struct {
	endpoint string // full URL of the traces endpoint; "" means tracing is off
	headers  map[string]string
	timeout  time.Duration
	gzip     bool
	service  string
	resource []attribute.KeyValue
	sampler  sdktrace.Sampler
	batch    []sdktrace.BatchSpanProcessorOption
}

// parseSettings reads and validates every variable Setup honours, reporting all problems at once.
func parseSettings(env map[string]string) (settings, error) {
	var s settings
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s=%q: %s", name, env[name], fmt.Sprintf(format, args...)))
	}
	// pick returns the traces-specific variable if set, else the general one, and the name it used.
	pick := func(general, specific string) (string, string) {
		if v, ok := env[specific]; ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), specific
		}
		return strings.TrimSpace(env[general]), general
	}

	switch v := strings.ToLower(strings.TrimSpace(env["OTEL_SDK_DISABLED"])); v {
	case "", "false":
	case "true":
		return s, nil
	default:
		bad("OTEL_SDK_DISABLED", "want true or false")
	}
	switch v := strings.TrimSpace(env["OTEL_TRACES_EXPORTER"]); v {
	case "", "otlp":
	case "none":
		return s, nil
	default:
		bad("OTEL_TRACES_EXPORTER", "only otlp (over HTTP/protobuf) or none are supported")
	}
	if v, name := pick("OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"); v != "" && v != "http/protobuf" {
		bad(name, "only http/protobuf is supported (grpc and http/json are not built in; point the endpoint at the collector's OTLP/HTTP port, usually 4318)")
	}

	if v := strings.TrimSpace(env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]); v != "" {
		if err := checkEndpoint(v); err != nil {
			bad("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "%v", err)
		}
		s.endpoint = v // used as is: the signal-specific URL is the full URL
	} else if v := strings.TrimSpace(env["OTEL_EXPORTER_OTLP_ENDPOINT"]); v != "" {
		if err := checkEndpoint(v); err != nil {
			bad("OTEL_EXPORTER_OTLP_ENDPOINT", "%v", err)
		} else {
			u, _ := url.Parse(v)
			u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
			u.RawPath = ""
			s.endpoint = u.String()
		}
	}

	s.headers = map[string]string{}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		pairs, err := ParseList(env[name])
		if err != nil {
			bad(name, "%v", err)
		}
		for _, p := range pairs {
			s.headers[p[0]] = p[1]
		}
	}
	if v, name := pick("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms <= 0 {
			bad(name, "want a positive number of milliseconds")
		} else {
			s.timeout = time.Duration(ms) * time.Millisecond
		}
	}
	switch v, name := pick("OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION"); v {
	case "", "none":
	case "gzip":
		s.gzip = true
	default:
		bad(name, "want gzip or none")
	}

	attrs, err := ParseList(env["OTEL_RESOURCE_ATTRIBUTES"])
	if err != nil {
		bad("OTEL_RESOURCE_ATTRIBUTES", "%v", err)
	}
	s.service = DefaultServiceName
	for _, a := range attrs {
		if a[0] == "service.name" {
			s.service = a[1]
			continue
		}
		s.resource = append(s.resource, attribute.String(a[0], a[1]))
	}
	if v := strings.TrimSpace(env["OTEL_SERVICE_NAME"]); v != "" {
		s.service = v
	}
	s.resource = append(s.resource, attribute.String("service.name", s.service))

	sampler, err := parseSampler(strings.TrimSpace(env["OTEL_TRACES_SAMPLER"]), strings.TrimSpace(env["OTEL_TRACES_SAMPLER_ARG"]))
	if err != nil {
		errs = append(errs, err)
	}
	s.sampler = sampler

	for _, b := range []struct {
		name string
		opt  func(int) sdktrace.BatchSpanProcessorOption
	}{
		{"OTEL_BSP_SCHEDULE_DELAY", func(ms int) sdktrace.BatchSpanProcessorOption {
			return sdktrace.WithBatchTimeout(time.Duration(ms) * time.Millisecond)
		}},
		{"OTEL_BSP_EXPORT_TIMEOUT", func(ms int) sdktrace.BatchSpanProcessorOption {
			return sdktrace.WithExportTimeout(time.Duration(ms) * time.Millisecond)
		}},
		{"OTEL_BSP_MAX_QUEUE_SIZE", sdktrace.WithMaxQueueSize},
		{"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", sdktrace.WithMaxExportBatchSize},
	} {
		v := strings.TrimSpace(env[b.name])
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			bad(b.name, "want a positive integer")
			continue
		}
		s.batch = append(s.batch, b.opt(n))
	}
	return s, errors.Join(errs...)
}

// checkEndpoint accepts an absolute http or https URL with a host, without query or fragment.
func checkEndpoint(v string) error {
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL (OTLP over HTTP, e.g. http://collector:4318)")
	}
	if u.Host == "" {
		return errors.New("the URL has no host")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("the URL must not carry a query, fragment or user info (use OTEL_EXPORTER_OTLP_HEADERS for credentials)")
	}
	return nil
}

// parseSampler maps OTEL_TRACES_SAMPLER and its argument to a sampler; "" is parentbased_always_on.
func parseSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a probability between 0 and 1", arg)
		}
		return f, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "traceidratio", "parentbased_traceidratio":
		f, err := ratio()
		if err != nil {
			return sdktrace.ParentBased(sdktrace.AlwaysSample()), err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(f), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(f)), nil
	}
	return sdktrace.ParentBased(sdktrace.AlwaysSample()), fmt.Errorf("OTEL_TRACES_SAMPLER=%q: want always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}

// ParseList parses the W3C-baggage-like lists of OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES:
// comma-separated key=value pairs, surrounding spaces trimmed, values percent-decoded. Empty members are
// skipped; a member without '=', with an empty key, or with a bad percent escape is an error naming it.
// Pairs come back in order (a later duplicate key wins when the caller fills a map).
func ParseList(s string) ([][2]string, error) {
	var out [][2]string
	var errs []error
	for member := range strings.SplitSeq(s, ",") {
		member = strings.TrimSpace(member)
		if member == "" {
			continue
		}
		k, v, ok := strings.Cut(member, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			errs = append(errs, fmt.Errorf("%q: want key=value", member))
			continue
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q: bad percent escape in the value", member))
			continue
		}
		out = append(out, [2]string{k, dv})
	}
	return out, errors.Join(errs...)
}

// loggingExporter reports export failures on the gateway's logger, at most one line a minute with the
// count of failures since the last line, and hides them from the batch processor (which would otherwise
// hand them to OpenTelemetry's process-global error handler).
type loggingExporter struct {
	sdktrace.SpanExporter
	logger   *slog.Logger
	endpoint string

	mu         sync.Mutex
	lastLog    time.Time
	suppressed int
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if now := time.Now(); now.Sub(e.lastLog) >= time.Minute {
		e.logger.Warn("tracing: cannot export spans; they are dropped", "endpoint", e.endpoint, "spans", len(spans), "earlier_failures", e.suppressed, "cause", err)
		e.lastLog, e.suppressed = now, 0
	} else {
		e.suppressed++
	}
	return nil
}

// Environ turns os.Environ-style "K=V" pairs into the map Setup reads, keeping only OTEL_* variables.
func Environ(pairs []string) map[string]string {
	m := map[string]string{}
	for _, kv := range pairs {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			m[k] = v
		}
	}
	return m
}
