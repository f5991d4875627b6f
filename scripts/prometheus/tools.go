//go:build tools

// Package prometheus pins Prometheus's two programs; scripts/prometheus.sh
// runs `go build` of each in this module (go.mod and go.sum pin every
// module), so the integration tests scrape with the 3.x line operators run.
package prometheus

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
