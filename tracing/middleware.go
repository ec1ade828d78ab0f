package tracing

import (
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/switchyard/switchyard/reqinfo"
)

// Middleware returns the tracing middleware for tp (as Setup returned it).
//
// For a no-op or nil provider it returns the handler unchanged: nothing is allocated per request and the
// client's traceparent, tracestate and baggage headers reach the applications as sent.
//
// Otherwise every request gets a server span, a child of the client's W3C trace context when the request
// carries a valid one (the sampler decides with that parent), a new trace root when not. The span is named
// "METHOD ROUTE" with the http.route attribute once the route table has recorded the route pattern in the
// request's reqinfo record (place the middleware inside reqinfo's attachment, as gateway.Options.Observe
// is), else "METHOD". Before the request goes on, its traceparent and tracestate headers are replaced by the
// server span's context, so every application kind sees the gateway's span as its parent: HTTP apps as
// headers, CGI-family apps as HTTP_TRACEPARENT and HTTP_TRACESTATE. The span is exported even when the
// response is aborted mid-body.
//
// The middleware records no metrics (the gateway has its own Prometheus middleware) and reads no
// process-global OpenTelemetry state.
func Middleware(tp trace.TracerProvider) func(http.Handler) http.Handler {
	if !Enabled(tp) {
		return func(h http.Handler) http.Handler { return h }
	}
	prop := Propagator()
	opts := []otelhttp.Option{
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(prop),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return methodName(r.Method) }),
	}
	return func(next http.Handler) http.Handler {
		inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Drop what the client sent first: an invalid tracestate must not ride along with the new parent.
			r.Header.Del("Traceparent")
			r.Header.Del("Tracestate")
			prop.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
			span := trace.SpanFromContext(r.Context())
			defer func() {
				// Deferred so that an aborted response (panic(http.ErrAbortHandler)) still names its span.
				if route := reqinfo.From(r.Context()).Snapshot().Route; route != "" {
					span.SetName(methodName(r.Method) + " " + route)
					span.SetAttributes(attribute.String("http.route", route))
				}
			}()
			next.ServeHTTP(w, r)
		})
		return otelhttp.NewHandler(inner, "", opts...)
	}
}

// Enabled reports whether tp records spans: false for nil and for the no-op provider Setup returns when
// tracing is off.
func Enabled(tp trace.TracerProvider) bool {
	if tp == nil {
		return false
	}
	_, isNoop := tp.(noop.TracerProvider)
	return !isNoop
}

// methodName is the method for span names: a client-chosen method would give every request its own name,
// so unknown methods are "HTTP", as the OpenTelemetry HTTP conventions say.
func methodName(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "HTTP"
}
