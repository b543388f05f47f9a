package main

import (
	"context"
	"errors"
	"runtime/debug"
	"time"

	"github.com/crbpf/crbpf/checkpoint"
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

// checkpointResult classifies a checkpoint's outcome for the metrics.
func checkpointResult(err error) string {
	switch {
	case err == nil:
		return metrics.ResultOK
	case errors.Is(err, context.Canceled):
		return metrics.ResultInterrupted
	case errors.Is(err, checkpoint.ErrUnsupportedState), errors.Is(err, checkpoint.ErrPermission):
		return metrics.ResultRefused
	}
	return metrics.ResultError
}

// checkpointMetrics is what a checkpoint (res is nil when err is not)
// tells the metrics; took is its wall time when it failed.
func checkpointMetrics(res *checkpoint.Result, err error, took time.Duration) metrics.Checkpoint {
	m := metrics.Checkpoint{Result: checkpointResult(err), Duration: took}
	if res == nil {
		return m
	}
	m.Mode, m.Duration, m.Freeze = res.Mode, res.Total, res.Freeze
	m.PagesWritten, m.BytesWritten = res.Pages, res.Bytes
	for _, r := range res.Rounds {
		m.Rounds = append(m.Rounds, metrics.Round{DirtyPages: r.DirtyPages, Bytes: r.Bytes, Duration: r.Duration})
	}
	return m
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
