// Package admin owns the admin listener's handler: liveness (/healthz), readiness (/readyz), Prometheus
// metrics (/metrics), the route table (/api/routes), instance health (/api/upstreams), and every endpoint
// a component contributes through gateway.Gateway.Admin. Every request reads the gateway current at that
// moment, so the admin API follows configuration reloads.
//
// The admin handler serves no application traffic and has no authentication: bind it to loopback or a
// private network (the default is 127.0.0.1:9901), never to the public port.
package admin

import (
	"encoding/json"
	"net/http"
	// Importing net/http/pprof registers its handlers on http.DefaultServeMux as a side effect. That is
	// harmless here: nothing in the gateway ever serves DefaultServeMux. The profiles are registered
	// explicitly on the admin mux below, and only when Options.Pprof asks for them.
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/gateway"
	"github.com/switchyard/switchyard/metrics"
)

// Handler returns the admin handler. current returns the gateway serving now (it must be safe for
// concurrent use and may not return nil); reg is the registry /metrics exposes (nil: no /metrics).
//
// Routes: GET /healthz is 200 while the process runs. GET /readyz is 200 when Ready says so, 503 with
// the reasons otherwise. GET /api/routes is the route table as JSON, GET /api/upstreams the health of every
// app's instances (see Upstreams). Other paths go to current().Admin: an exact key match first, then the
// longest key ending in "/" that prefixes the path.
func Handler(current func() *gateway.Gateway, reg *prometheus.Registry) http.Handler {
	return HandlerWith(current, reg, Options{})
}

// Options are the admin handler's optional endpoints. The zero value serves none of them.
type Options struct {
	// Pprof serves Go's runtime profiles (net/http/pprof: index, cmdline, profile, symbol, trace and the
	// named profiles such as heap and allocs) under /debug/pprof/. A profile shows the gateway's internals
	// and a CPU profile or trace costs CPU while it runs: turn it on to investigate, on an admin listener
	// that only operators reach.
	Pprof bool
}

// HandlerWith is Handler with the optional endpoints opts turns on.
func HandlerWith(current func() *gateway.Gateway, reg *prometheus.Registry, opts Options) http.Handler {
	mux := http.NewServeMux()
	if opts.Pprof {
		// pprof.Index also serves the named profiles: /debug/pprof/heap, /debug/pprof/allocs, ...
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ok, reasons := Ready(current())
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(strings.Join(reasons, "\n") + "\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	mux.HandleFunc("GET /api/routes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, current().Routes)
	})
	mux.HandleFunc("GET /api/upstreams", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Upstreams(current()))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h := contributed(current().Admin, r.URL.Path); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
	return mux
}

// contributed finds the component endpoint for path: an exact key, else the longest key ending in "/"
// that prefixes path.
func contributed(m map[string]http.Handler, path string) http.Handler {
	if h, ok := m[path]; ok {
		return h
	}
	var best string
	for k := range m {
		if strings.HasSuffix(k, "/") && strings.HasPrefix(path, k) && len(k) > len(best) {
			best = k
		}
	}
	if best == "" {
		return nil
	}
	return m[best]
}

// Upstreams reports every app of g with its instances' health, in g.Apps order. An app whose handler is
// not an adapters.HealthReporter is reported as one instance (the app itself), known and healthy, with
// Tracked false.
func Upstreams(g *gateway.Gateway) []metrics.AppHealth {
	out := make([]metrics.AppHealth, 0, len(g.Apps))
	for _, a := range g.Apps {
		ah := metrics.AppHealth{App: a.Name, Role: a.Role}
		if hr, ok := a.Handler.(adapters.HealthReporter); ok {
			ah.Tracked = true
			ah.Instances = hr.Health()
		} else {
			ah.Instances = []adapters.InstanceHealth{{Address: a.Name, Healthy: true, Known: true}}
		}
		if ah.Instances == nil {
			ah.Instances = []adapters.InstanceHealth{}
		}
		out = append(out, ah)
	}
	return out
}

// Ready says whether g should receive traffic: no instance is still waiting for its first verdict, and at
// least one instance of the primary is healthy (when there is a primary). Apps that do not track health
// count as known and up.
//
// An instance reported neither Known nor Healthy is waiting (e.g. for its first active check). One reported
// Healthy but not Known is one nothing has judged yet: a single instance on the fast path, or passive-only
// tracking that learns from requests. It counts as up: were it to block readiness, an idle app would keep
// the gateway unready forever, waiting for traffic an unready gateway never receives. When not ready,
// reasons says why, one line per problem.
func Ready(g *gateway.Gateway) (ok bool, reasons []string) {
	for _, a := range Upstreams(g) {
		up := 0
		for _, in := range a.Instances {
			switch {
			case in.Healthy:
				up++
			case !in.Known:
				reasons = append(reasons, a.Role+" "+a.App+": health of "+in.Address+" not known yet")
			}
		}
		if a.Role == "primary" && up == 0 {
			reasons = append(reasons, "primary "+a.App+": no healthy instance")
		}
	}
	return len(reasons) == 0, reasons
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}
