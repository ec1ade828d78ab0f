package admin

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard/switchyard/gateway"
)

// CurrentCollectors returns a collector that gathers, at every scrape, the collectors of the gateway that is
// current then (gateway.Gateway.Collectors, such as the migration report's numbers). A reload builds new
// collectors; registering this once keeps /metrics showing the live configuration's without re-registering.
// It describes nothing up front, so the registry treats it as unchecked: the collectors' metric names must
// not clash with other registered ones (they are namespaced switchyard_migration_*).
func CurrentCollectors(current func() *gateway.Gateway) prometheus.Collector {
	return currentCollectors(current)
}

type currentCollectors func() *gateway.Gateway

func (c currentCollectors) Describe(chan<- *prometheus.Desc) {}

func (c currentCollectors) Collect(ch chan<- prometheus.Metric) {
	g := c()
	if g == nil {
		return
	}
	for _, col := range g.Collectors {
		col.Collect(ch)
	}
}
