package main

import (
	"runtime/debug"

	"github.com/crbpf/crbpf/metrics"
)

// recordMetrics merges what record puts into a fresh metrics Set into the
// node_exporter textfile named by --metrics-textfile, if any. A failure
// to write it is a warning: the checkpoint or restart itself stands.
func (g *globals) recordMetrics(record func(*metrics.Set)) {
	if g.metricsTextfile == "" {
		return
	}
	s := metrics.New(metrics.BuildInfo{Version: crbpfVersion(), Revision: revision()}, nil)
	record(s)
	if err := s.WriteTextfile(g.metricsTextfile); err != nil {
		g.progress("warning: metrics not recorded: %v", err)
	}
}

// revision is the VCS revision crbpf was built from ("" when unknown).
func revision() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			return s.Value
		}
	}
	return ""
}
