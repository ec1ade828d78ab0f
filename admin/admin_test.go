package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/gateway"
)

// reporter is an app handler with a fixed health report.
type reporter []adapters.InstanceHealth

func (reporter) ServeHTTP(http.ResponseWriter, *http.Request) {}
func (r reporter) Health() []adapters.InstanceHealth          { return r }

var (
	up       = adapters.InstanceHealth{Address: "http://up", Known: true, Healthy: true}
	down     = adapters.InstanceHealth{Address: "http://down", Known: true, Healthy: false}
	waiting  = adapters.InstanceHealth{Address: "http://waiting"}
	unjudged = adapters.InstanceHealth{Address: "http://unjudged", Healthy: true}
)

var (
	downWithCause = adapters.InstanceHealth{Address: "http://down", Known: true, LastError: "health check /healthz answered 400"}
	errRefused    = errors.New("connection refused")
)

// reacher is a reporter whose instances answer a connection with err.
type reacher struct {
	reporter
	err error
}

func (r reacher) Reach(context.Context, string) error { return r.err }

// wrapper hides its app behind Unwrap, as the gateway's timing wrapper does.
type wrapper struct{ h http.Handler }

func (w wrapper) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.h.ServeHTTP(rw, r) }
func (w wrapper) Health() []adapters.InstanceHealth                 { return w.h.(adapters.HealthReporter).Health() }
func (w wrapper) Unwrap() http.Handler                              { return w.h }

func TestReadiness(t *testing.T) {
	plain := http.NotFoundHandler()
	tests := []struct {
		name   string
		apps   []gateway.BuiltApp
		ready  bool
		reason string
	}{
		{"apps that do not track health are ready", []gateway.BuiltApp{{Name: "status:200", Handler: plain, Role: "primary"}}, true, ""},
		{"a primary with one healthy instance of two is ready", []gateway.BuiltApp{{Name: "p", Handler: reporter{up, down}, Role: "primary"}}, true, ""},
		{"a primary with no healthy instance is not ready", []gateway.BuiltApp{{Name: "p", Handler: reporter{down}, Role: "primary"}}, false, "primary p: no reachable instance"},
		{"an instance waiting for its first check blocks readiness", []gateway.BuiltApp{{Name: "p", Handler: reporter{up}, Role: "primary"}, {Name: "r", Handler: reporter{waiting}, Role: "route"}}, false, "http://waiting not known yet"},
		{"a healthy instance nothing has judged yet counts as up", []gateway.BuiltApp{{Name: "p", Handler: reporter{unjudged}, Role: "primary"}}, true, ""},
		{"a route whose instances are all down blocks readiness", []gateway.BuiltApp{{Name: "p", Handler: reporter{up}, Role: "primary"}, {Name: "r", Handler: reporter{down}, Role: "route"}}, false, "route r: no reachable instance"},
		{"a route's line names the route's pattern and its app", []gateway.BuiltApp{{Name: "p", Handler: reporter{up}, Role: "primary", Pattern: "*"}, {Name: "127.0.0.1:8000", Handler: reporter{down}, Role: "route", Pattern: "/shop/"}}, false, "route /shop/ app 127.0.0.1:8000: no reachable instance"},
		{"the old app of a migrating route is named as the old app", []gateway.BuiltApp{{Name: "shop", Handler: reporter{up}, Role: "route", Pattern: "/shop/", Side: "new"}, {Name: "django", Handler: reporter{down}, Role: "route", Pattern: "/shop/", Side: "old"}}, false, "route /shop/ old app django: no reachable instance"},
		{"the new app of a migrating route is named as the new app", []gateway.BuiltApp{{Name: "shop", Handler: reporter{down}, Role: "route", Pattern: "/shop/", Side: "new"}, {Name: "django", Handler: reporter{up}, Role: "route", Pattern: "/shop/", Side: "old"}}, false, "route /shop/ new app shop: no reachable instance"},
		{"the old app of the primary and delegate pair is named as the old app", []gateway.BuiltApp{{Name: "p", Handler: reporter{up}, Role: "primary", Pattern: "*", Side: "new"}, {Name: "d", Handler: reporter{down}, Role: "delegate", Pattern: "*", Side: "old"}}, false, "delegate (old app) d: no reachable instance"},
		{"a delegate whose instances are all down blocks readiness", []gateway.BuiltApp{{Name: "p", Handler: reporter{up}, Role: "primary"}, {Name: "d", Handler: reporter{down}, Role: "delegate"}}, false, "delegate d: no reachable instance"},
		{"a route with ready=false does not block readiness", []gateway.BuiltApp{{Name: "p", Handler: reporter{up}, Role: "primary"}, {Name: "r", Handler: reporter{down}, Role: "route", NotForReadiness: true}}, true, ""},
		{"the cause of a failing check is in the reason", []gateway.BuiltApp{{Name: "p", Handler: reporter{downWithCause}, Role: "primary"}}, false, "http://down: health check /healthz answered 400"},
		{"an open circuit breaker is named, with the last error", []gateway.BuiltApp{{Name: "p", Handler: reporter{adapters.InstanceHealth{Address: "http://open", Known: true,
			Unavailable: "circuit breaker open", LastError: "dial tcp: connection refused"}}, Role: "primary"}}, false,
			"primary p: no reachable instance (http://open: circuit breaker open, last error: dial tcp: connection refused)"},
		{"an unjudged instance that accepts a connection is up", []gateway.BuiltApp{{Name: "p", Handler: reacher{reporter{unjudged}, nil}, Role: "primary"}}, true, ""},
		{"an unjudged instance that refuses connections is down", []gateway.BuiltApp{{Name: "p", Handler: reacher{reporter{unjudged}, errRefused}, Role: "primary"}}, false, "primary p: no reachable instance (http://unjudged unreachable: connection refused)"},
		{"a reacher behind a wrapper is found", []gateway.BuiltApp{{Name: "p", Handler: wrapper{reacher{reporter{unjudged}, errRefused}}, Role: "primary"}}, false, "unreachable"},
		{"an unreachable route with ready=false does not block readiness", []gateway.BuiltApp{{Name: "r", Handler: reacher{reporter{unjudged}, errRefused}, Role: "route", NotForReadiness: true}}, true, ""},
		{"a gateway with routes only is ready", []gateway.BuiltApp{{Name: "r", Handler: plain, Role: "route"}}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &gateway.Gateway{Apps: tt.apps}
			h := Handler(func() *gateway.Gateway { return g }, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if got := rec.Code == 200; got != tt.ready {
				t.Errorf("ready = %v (%d %q), want %v", got, rec.Code, rec.Body.String(), tt.ready)
			}
			if !strings.Contains(rec.Body.String(), tt.reason) {
				t.Errorf("body %q lacks %q", rec.Body.String(), tt.reason)
			}
		})
	}
}

func TestEndpointsFollowTheCurrentGateway(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "switchyard_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	first := &gateway.Gateway{
		Routes: []gateway.RouteInfo{{Pattern: "/api/", App: "http://api?timeout=5s&name=api"}},
		Apps:   []gateway.BuiltApp{{Name: "http://api", Handler: reporter{up, down}, Role: "route"}},
		Admin: map[string]http.Handler{
			"/api/migration": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "migration v1") }),
			"/api/debug/":    http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "debug "+r.URL.Path) }),
		},
	}
	second := &gateway.Gateway{
		Routes: []gateway.RouteInfo{{Pattern: "/v2/", App: "http://v2"}},
		Apps:   []gateway.BuiltApp{{Name: "http://v2", Handler: http.NotFoundHandler(), Role: "route"}},
		Admin:  map[string]http.Handler{},
	}
	var cur atomic.Pointer[gateway.Gateway]
	cur.Store(first)
	srv := httptest.NewServer(Handler(cur.Load, reg))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		name   string
		gw     *gateway.Gateway
		path   string
		status int
		want   string
	}{
		{"healthz is always ok", first, "/healthz", 200, "ok"},
		{"routes are the current table", first, "/api/routes", 200, `"pattern": "/api/"`},
		{"an app URL's query reads as written, not with & escaped as \\u0026", first, "/api/routes", 200, `"app": "http://api?timeout=5s&name=api"`},
		{"upstreams list every instance", first, "/api/upstreams", 200, `"address": "http://down"`},
		{"metrics come from the caller's registry", first, "/metrics", 200, "switchyard_test_total 1"},
		{"a contributed endpoint is served", first, "/api/migration", 200, "migration v1"},
		{"a contributed subtree is served", first, "/api/debug/pools", 200, "debug /api/debug/pools"},
		{"after a swap the routes are the new ones", second, "/api/routes", 200, `"pattern": "/v2/"`},
		{"after a swap an untracked app is one healthy instance", second, "/api/upstreams", 200, `"tracked": false`},
		{"after a swap a removed endpoint is gone", second, "/api/migration", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur.Store(tt.gw)
			status, body := get(tt.path)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("GET %s = %d %q, want %d containing %q", tt.path, status, body, tt.status, tt.want)
			}
		})
	}
}
