package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/adapters"
	"github.com/switchyard/switchyard/adapters/httpproxy"
	"github.com/switchyard/switchyard/internal/testpeer"
	"github.com/switchyard/switchyard/reqinfo"
)

func TestRetriesAndEjectionsOfARealBalancedAppAreCounted(t *testing.T) {
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer live.Close()
	dead := "unix://" + testpeer.SocketPath(t, "dead.sock") // nobody listens: the dial fails at once

	reg := adapters.NewRegistry(slog.New(slog.DiscardHandler))
	reg.MustRegister(httpproxy.Kind())
	raw := dead + "|" + live.URL + "?lb=first"
	tg, _, err := reg.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := reg.Build(tg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.(io.Closer).Close()

	prom := prometheus.NewRegistry()
	if _, err := New(prom, func() []AppHealth {
		return []AppHealth{{App: raw, Role: "primary", Tracked: true, Instances: h.(adapters.HealthReporter).Health()}}
	}); err != nil {
		t.Fatal(err)
	}

	r, _ := reqinfo.Attach(httptest.NewRequest("GET", "/", nil))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200 from the live instance after a retry", rec.Code)
	}

	deadAddr, liveAddr := h.(adapters.HealthReporter).Health()[0].Address, live.URL
	tests := []struct {
		name, metric, instance string
		want                   float64
	}{
		{"the dead instance's failed attempt was retried once", "switchyard_upstream_retries_total", deadAddr, 1},
		{"the live instance caused no retry", "switchyard_upstream_retries_total", liveAddr, 0},
		{"the dead instance was ejected once", "switchyard_upstream_ejections_total", deadAddr, 1},
		{"the live instance was not ejected", "switchyard_upstream_ejections_total", liveAddr, 0},
		{"the budget refused nothing", "switchyard_upstream_retry_budget_exhausted_total", deadAddr, 0},
		{"no breaker opened (none configured)", "switchyard_upstream_breaker_opens_total", deadAddr, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := value(t, prom, tt.metric, map[string]string{"app": raw, "instance": tt.instance}); got != tt.want {
				t.Errorf("%s{instance=%q} = %v, want %v", tt.metric, tt.instance, got, tt.want)
			}
		})
	}
}
