//go:build !no_otlp

package tracing_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/switchyard/switchyard/adapters/builtin"
	"github.com/switchyard/switchyard/config"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/tracing"
)

// collector is an in-process OTLP/HTTP trace receiver: it decodes every POST /v1/traces body.
type collector struct {
	*httptest.Server
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
	bad      []string
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		c.mu.Lock()
		defer c.mu.Unlock()
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
			c.bad = append(c.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
			http.Error(w, "unexpected", http.StatusBadRequest)
			return
		}
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			c.bad = append(c.bad, "undecodable body: "+err.Error())
			http.Error(w, "undecodable", http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.Key == "service.name" {
					c.services = append(c.services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *collector) received() ([]*tracepb.Span, []string, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...), append([]string(nil), c.services...), append([]string(nil), c.bad...)
}

// echoApp answers with the traceparent and tracestate headers it received.
func echoApp(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("Traceparent")+"|"+r.Header.Get("Tracestate"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// cgiApp writes a CGI program that answers with the HTTP_TRACEPARENT and HTTP_TRACESTATE it was given.
func cgiApp(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "echo.sh")
	script := "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n%s|%s' \"$HTTP_TRACEPARENT\" \"$HTTP_TRACESTATE\"\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "cgi://" + path
}

// startGateway builds a gateway with two routes (/api/ to an HTTP app, /cgi/ to a CGI program) and the
// tracing middleware Setup gives for env, and serves it on loopback.
func startGateway(t *testing.T, env map[string]string) (url string, shutdown func(context.Context) error) {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tp, shutdown, err := tracing.Setup(context.Background(), env, logger)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	cfg, err := config.Load(map[string]string{"GATEWAY_ROUTES": "/api/=" + echoApp(t) + ",/cgi/=" + cgiApp(t)}, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	g, err := gateway.Build(cfg, gateway.Options{Registry: builtin.Registry(logger, nil), Logger: logger, Observe: tracing.Middleware(tp)})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	srv := httptest.NewServer(g.Handler)
	t.Cleanup(func() {
		srv.Close()
		g.Close()
		shutdown(context.Background())
	})
	return srv.URL, shutdown
}

func get(t *testing.T, url string, header map[string]string) (traceparent, tracestate string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	traceparent, tracestate, _ = strings.Cut(string(body), "|")
	return traceparent, tracestate
}

// parseTraceparent splits a version-00 traceparent into trace id, parent id and flags.
func parseTraceparent(t *testing.T, tp string) (traceID, spanID, flags string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		t.Fatalf("app received traceparent %q, not a W3C version-00 traceparent", tp)
	}
	return parts[1], parts[2], parts[3]
}

const (
	clientTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientParent = "00f067aa0ba902b7"
	clientTP     = "00-" + clientTrace + "-" + clientParent + "-01"
	clientTS     = "vendor=opaque"
)

func TestGatewayTracing(t *testing.T) {
	tests := []struct {
		name string
		path string
	}{
		{"an HTTP app joins the client's trace as a child of the gateway's server span", "/api/orders"},
		{"a CGI program gets the same context as HTTP_TRACEPARENT", "/cgi/orders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := startCollector(t)
			url, shutdown := startGateway(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL, "OTEL_SERVICE_NAME": "edge"})
			tp, ts := get(t, url+tt.path, map[string]string{"traceparent": clientTP, "tracestate": clientTS})
			traceID, parentID, flags := parseTraceparent(t, tp)
			if traceID != clientTrace {
				t.Errorf("app's trace id %s, want the client's %s", traceID, clientTrace)
			}
			if parentID == clientParent {
				t.Errorf("app's parent is the client's span %s, want the gateway's server span", parentID)
			}
			if flags != "01" {
				t.Errorf("app's trace flags %s, want 01 (sampled, as the client's parent was)", flags)
			}
			if ts != clientTS {
				t.Errorf("app's tracestate %q, want the client's %q", ts, clientTS)
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			spans, services, bad := col.received()
			if len(bad) > 0 {
				t.Fatalf("collector refused exports: %q", bad)
			}
			if len(spans) != 1 {
				t.Fatalf("collector received %d spans, want 1 server span", len(spans))
			}
			s := spans[0]
			route := strings.SplitN(tt.path, "/", 3)[1]
			want := "GET /" + route + "/"
			if s.Name != want {
				t.Errorf("span name %q, want %q", s.Name, want)
			}
			if s.Kind != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("span kind %v, want server", s.Kind)
			}
			if got := hex.EncodeToString(s.TraceId); got != clientTrace {
				t.Errorf("span trace id %s, want %s", got, clientTrace)
			}
			if got := hex.EncodeToString(s.ParentSpanId); got != clientParent {
				t.Errorf("span parent %s, want the client's %s", got, clientParent)
			}
			if got := hex.EncodeToString(s.SpanId); got != parentID {
				t.Errorf("span id %s, but the app's parent is %s", got, parentID)
			}
			if !hasAttr(s, "http.route", "/"+route+"/") {
				t.Errorf("span has no http.route=/%s/ attribute: %v", route, s.Attributes)
			}
			if len(services) != 1 || services[0] != "edge" {
				t.Errorf("resource service.name %q, want [edge]", services)
			}
		})
	}
}

func hasAttr(s *tracepb.Span, key, value string) bool {
	for _, a := range s.Attributes {
		if a.Key == key && a.GetValue().GetStringValue() == value {
			return true
		}
	}
	return false
}

func TestGatewayTracingVariants(t *testing.T) {
	tests := []struct {
		name         string
		env          func(col string) map[string]string
		header       map[string]string
		wantTP       string // exact traceparent the app must see; "" checks the fields below
		wantSampled  string
		wantSameRoot bool // the app's trace id is the client's
		wantSpans    int
		wantNoTS     bool // the client's tracestate must not reach the app
	}{
		{
			name:   "with no OTEL variable nothing is exported and the app gets the client's traceparent unchanged",
			env:    func(string) map[string]string { return map[string]string{} },
			header: map[string]string{"traceparent": clientTP, "tracestate": clientTS},
			wantTP: clientTP,
		},
		{
			name: "OTEL_SDK_DISABLED=true turns tracing off even with an endpoint",
			env: func(c string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c, "OTEL_SDK_DISABLED": "true"}
			},
			header: map[string]string{"traceparent": clientTP},
			wantTP: clientTP,
		},
		{
			name: "a request without trace context starts a new sampled trace the app joins",
			env: func(c string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": c + "/v1/traces"}
			},
			wantSampled: "01",
			wantSpans:   1,
		},
		{
			name: "always_off still propagates the client's trace, unsampled, and exports nothing",
			env: func(c string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c, "OTEL_TRACES_SAMPLER": "always_off"}
			},
			header:       map[string]string{"traceparent": clientTP},
			wantSampled:  "00",
			wantSameRoot: true,
		},
		{
			name: "parentbased_always_off follows a sampled client parent",
			env: func(c string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c, "OTEL_TRACES_SAMPLER": "parentbased_always_off"}
			},
			header:       map[string]string{"traceparent": clientTP},
			wantSampled:  "01",
			wantSameRoot: true,
			wantSpans:    1,
		},
		{
			name: "a malformed client traceparent is replaced by a new trace",
			env: func(c string) map[string]string {
				return map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": c}
			},
			header:      map[string]string{"traceparent": "00-zz-yy-01", "tracestate": "a=b"},
			wantSampled: "01",
			wantSpans:   1,
			wantNoTS:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			col := startCollector(t)
			url, shutdown := startGateway(t, tt.env(col.URL))
			tp, ts := get(t, url+"/api/x", tt.header)
			if tt.wantNoTS && ts != "" {
				t.Errorf("app received the client's tracestate %q with a new trace", ts)
			}
			if tt.wantTP != "" {
				if tp != tt.wantTP {
					t.Errorf("app received traceparent %q, want %q", tp, tt.wantTP)
				}
			} else {
				traceID, _, flags := parseTraceparent(t, tp)
				if flags != tt.wantSampled {
					t.Errorf("app's trace flags %s, want %s", flags, tt.wantSampled)
				}
				if same := traceID == clientTrace; same != tt.wantSameRoot {
					t.Errorf("app's trace id %s; in the client's trace: %v, want %v", traceID, same, tt.wantSameRoot)
				}
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			spans, _, bad := col.received()
			if len(bad) > 0 {
				t.Fatalf("collector refused exports: %q", bad)
			}
			if len(spans) != tt.wantSpans {
				t.Errorf("collector received %d spans, want %d", len(spans), tt.wantSpans)
			}
		})
	}
}

func TestSetupOff(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"no variable at all", nil},
		{"only a service name", map[string]string{"OTEL_SERVICE_NAME": "x"}},
		{"the exporter is none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}},
		{"the SDK is disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "TRUE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, shutdown, err := tracing.Setup(context.Background(), tt.env, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tracing.Enabled(tp) {
				t.Error("tracing is on")
			}
			h := http.Handler(&httputil.ReverseProxy{}) // any comparable handler
			if got := tracing.Middleware(tp)(h); got != h {
				t.Error("the middleware wraps the handler while tracing is off")
			}
			if err := shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestSetupErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // every one must appear in the error
	}{
		{"a gRPC protocol is refused with a hint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
			[]string{"OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\"", "4318"}},
		{"an endpoint without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=\"collector:4318\"", "http://"}},
		{"a traces endpoint with credentials in the URL", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://u:p@c/v1/traces"},
			[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS"}},
		{"every problem at once", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":    "http://c:4318",
			"OTEL_TRACES_SAMPLER":            "sometimes",
			"OTEL_EXPORTER_OTLP_HEADERS":     "authorization",
			"OTEL_EXPORTER_OTLP_TIMEOUT":     "10s",
			"OTEL_EXPORTER_OTLP_COMPRESSION": "zstd",
			"OTEL_BSP_MAX_QUEUE_SIZE":        "-1",
			"OTEL_RESOURCE_ATTRIBUTES":       "a=%zz",
		}, []string{"OTEL_TRACES_SAMPLER=\"sometimes\"", "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_RESOURCE_ATTRIBUTES"}},
		{"a ratio out of range", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"},
			[]string{"OTEL_TRACES_SAMPLER_ARG=\"2\""}},
		{"an unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, []string{"OTEL_TRACES_EXPORTER=\"zipkin\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tracing.Setup(context.Background(), tt.env, nil)
			if err == nil {
				t.Fatal("Setup accepted the settings")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExportHeadersAndFailureLog(t *testing.T) {
	var mu sync.Mutex
	var got []string
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization")+" "+r.Header.Get("X-Tenant"))
		mu.Unlock()
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer col.Close()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	tp, shutdown, err := tracing.Setup(context.Background(), map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT":       col.URL + "/otlp/",
		"OTEL_EXPORTER_OTLP_HEADERS":        "Authorization=Bearer%20t0k, X-Tenant=a",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS": "X-Tenant=b",
		"OTEL_EXPORTER_OTLP_TIMEOUT":        "5000",
	}, logger)
	if err != nil {
		t.Fatal(err)
	}
	h := tracing.Middleware(tp)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "Bearer t0k b" {
		t.Errorf("collector saw headers %q, want [\"Bearer t0k b\"]", got)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "cannot export spans") || !strings.Contains(logs.String(), "/otlp/v1/traces") {
		t.Errorf("no export failure logged naming the endpoint:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestParseList(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    [][2]string
		wantErr bool
	}{
		{"pairs are trimmed and percent-decoded", " a = b%2Cc ,d=e", [][2]string{{"a", "b,c"}, {"d", "e"}}, false},
		{"empty members are skipped", ",,a=1,", [][2]string{{"a", "1"}}, false},
		{"a value may contain '='", "k=a=b", [][2]string{{"k", "a=b"}}, false},
		{"a member without '=' is an error", "a=1,b", [][2]string{{"a", "1"}}, true},
		{"an empty key is an error", "=v", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tracing.ParseList(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("pair %d: %q, want %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func FuzzParseList(f *testing.F) {
	for _, s := range []string{"", "a=b", " a = b%2C ,c=d", "=", "a", "a=%zz", ",,,", "k=v=w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pairs, _ := tracing.ParseList(s)
		for _, p := range pairs {
			if p[0] == "" || strings.ContainsAny(p[0], ",=") || p[0] != strings.TrimSpace(p[0]) {
				t.Fatalf("%q gave key %q", s, p[0])
			}
		}
		if len(pairs) > strings.Count(s, "=") {
			t.Fatalf("%q gave %d pairs from %d '='", s, len(pairs), strings.Count(s, "="))
		}
	})
}
