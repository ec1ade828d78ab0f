// Package admin owns the admin listener's handler: liveness (/healthz), readiness (/readyz), Prometheus
// metrics (/metrics), the route table (/api/routes), instance health (/api/upstreams), and every endpoint
// a component contributes through gateway.Gateway.Admin. Every request reads the gateway current at that
// moment, so the admin API follows configuration reloads.
//
// The admin handler serves no application traffic and has no authentication: bind it to loopback or a
// private network (the default is 127.0.0.1:9901), never to the public port.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	// Importing net/http/pprof registers its handlers on http.DefaultServeMux as a side effect. That is
	// harmless here: nothing in the gateway ever serves DefaultServeMux. The profiles are registered
	// explicitly on the admin mux below, and only when Options.Pprof asks for them.
	"net/http/pprof"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/autotls"
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
	// Certificates, when not nil, serves GET /api/certificates (each name's certificate state as JSON) and
	// adds the certificates to /readyz: not ready while a name's first certificate is still being ordered,
	// and one line per name in the answer (a name that failed is reported but does not fail readiness:
	// it is retried while the other names are served).
	Certificates Certificates
}

// Certificates is what the admin listener reads of the gateway's certificates (an *autotls.Manager).
type Certificates interface {
	Statuses() []autotls.Status
	Settled() bool
}

// certificateLines are /readyz's lines about certificates, one per name.
func certificateLines(c Certificates) []string {
	var out []string
	for _, s := range c.Statuses() {
		line := "certificate " + s.Name + " (" + s.Source + "): " + s.State
		if s.ValidUntil != nil {
			line += ", valid until " + s.ValidUntil.UTC().Format(time.RFC3339)
		}
		if s.NextRenewal != nil {
			line += ", renewal from " + s.NextRenewal.UTC().Format(time.RFC3339)
		}
		if s.LastError != "" {
			line += fmt.Sprintf(", last error (%d failures, retried with backoff): %s", s.Failures, s.LastError)
		}
		out = append(out, line)
	}
	return out
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
		ok, reasons := Ready(r.Context(), current())
		var certs []string
		if opts.Certificates != nil {
			if !opts.Certificates.Settled() {
				ok = false
				reasons = append(reasons, "certificates: the first certificate of a name is still being ordered")
			}
			certs = certificateLines(opts.Certificates)
		}
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(strings.Join(append(reasons, certs...), "\n") + "\n"))
			return
		}
		w.Write([]byte(strings.Join(append([]string{"ready"}, certs...), "\n") + "\n"))
	})
	if reg != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	}
	mux.HandleFunc("GET /api/routes", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, current().Routes)
	})
	if opts.Certificates != nil {
		mux.HandleFunc("GET /api/certificates", func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, opts.Certificates.Statuses())
		})
	}
	mux.HandleFunc("GET /api/upstreams", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, Upstreams(current()))
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

// ReachTimeout bounds each connection /readyz opens to an instance nothing has judged yet.
const ReachTimeout = 2 * time.Second

// Ready says whether g should receive traffic, and when not, why (one line per problem). It is not
// ready when
//   - an instance is still waiting for its first verdict (reported neither Known nor Healthy), or
//   - an app that counts has no reachable instance. Every app counts (the primary, the delegates, every
//     route's app and a migrating route's old app) except one marked NotForReadiness (ready=false, or a
//     side of a migration whose outage its stage covers or sends no client to).
//
// An instance is reachable when its app's own tracking says it is healthy (active health checks, passive
// ejection, circuit breaker). One that nothing has judged yet (reported Healthy but not Known: a single
// instance without health checks, passive-only tracking before any traffic) is reachable when a connection
// to it opens now (adapters.Reacher, at most ReachTimeout, all apps at once), so an app that is down is seen
// without traffic and without configuring checks. Apps that do not report health (status:, file:, in-process
// apps) and unjudged instances of apps that cannot be reached over a network count as up.
func Ready(ctx context.Context, g *gateway.Gateway) (ok bool, reasons []string) {
	apps := Upstreams(g)
	type probe struct {
		app, inst int
		r         adapters.Reacher
		err       error
	}
	var probes []*probe
	for i, a := range apps {
		r, canReach := adapters.FindReacher(g.Apps[i].Handler)
		for j, in := range a.Instances {
			if in.Healthy && !in.Known && canReach {
				probes = append(probes, &probe{app: i, inst: j, r: r})
			}
		}
	}
	if len(probes) > 0 {
		rctx, cancel := context.WithTimeout(ctx, ReachTimeout)
		var wg sync.WaitGroup
		for _, p := range probes {
			wg.Go(func() { p.err = p.r.Reach(rctx, apps[p.app].Instances[p.inst].Address) })
		}
		wg.Wait()
		cancel()
	}
	unreachable := map[[2]int]error{}
	for _, p := range probes {
		if p.err != nil {
			unreachable[[2]int{p.app, p.inst}] = p.err
		}
	}
	for i, a := range apps {
		counts := !g.Apps[i].NotForReadiness
		who := readyName(g.Apps[i])
		up := 0
		var why []string
		for j, in := range a.Instances {
			err := unreachable[[2]int{i, j}]
			switch {
			case in.Healthy && err == nil:
				up++
			case in.Healthy:
				why = append(why, in.Address+" unreachable: "+err.Error())
			case !in.Known:
				if counts {
					reasons = append(reasons, who+": health of "+in.Address+" not known yet")
				}
			case in.Unavailable != "" || in.LastError != "":
				desc := in.Unavailable
				if in.LastError != "" {
					if desc != "" {
						desc += ", last error: "
					}
					desc += in.LastError
				}
				why = append(why, in.Address+": "+desc)
			}
		}
		if counts && up == 0 {
			line := who + ": no reachable instance"
			if len(why) > 0 {
				line += " (" + strings.Join(why, "; ") + ")"
			}
			reasons = append(reasons, line)
		}
	}
	return len(reasons) == 0, reasons
}

// readyName names an app in the lines of /readyz: its role, a route's pattern (a label alone does not say
// which route is down), which side of a migration it is (both apps of a migrating route are the route's),
// and its label: "primary p", "route /shop/ app shop", "route /shop/ old app django", "delegate (old app)
// legacy".
func readyName(a gateway.BuiltApp) string {
	if p := a.Pattern; p != "" && p != "*" {
		app := "app"
		if a.Side != "" {
			app = a.Side + " app"
		}
		return a.Role + " " + p + " " + app + " " + a.Name
	}
	if a.Side != "" {
		return a.Role + " (" + a.Side + " app) " + a.Name
	}
	return a.Role + " " + a.Name
}

// WriteJSON answers v the way every admin JSON endpoint does: indented, & and < left as they are (people
// read these with curl), application/json. Endpoints a program adds beside the admin's own use it too.
func WriteJSON(w http.ResponseWriter, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // app URLs carry & in their queries: people read this with curl, not in a page
	if err := enc.Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b.Bytes())
}
