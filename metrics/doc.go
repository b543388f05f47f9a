// Package metrics owns crbpf's Prometheus metrics: their names, types, labels
// and buckets, the registry that holds them, the HTTP handler that serves
// them and the node_exporter textfile writer used by standalone CLI runs.
//
// # Invariants
//
//   - Every metric lives in the Set's own registry, never in the global
//     default one, and is named crbpf_*, in base units (seconds, bytes).
//   - Labels are small and bounded: result and mode only. A pid or a CRID is
//     never a label; the last CRID issued is a gauge value. Result and mode
//     values outside the documented constants are recorded as "unknown", so
//     a caller bug cannot grow the series set.
//   - Every result×mode series of crbpf_checkpoints_total and every result
//     series of crbpf_restarts_total exists at 0 from New on, so dashboards
//     never see "no data".
//   - Only successful checkpoints and restarts feed the duration, freeze,
//     round and volume metrics; every outcome feeds the counters by result.
//
// # Lifecycle
//
// New builds a Set; it holds no goroutine, file or BPF object and needs no
// Close. All methods are safe for concurrent use. The EBPFSource given to New
// is called on every scrape (and by WriteTextfile) from the scraping
// goroutine, so it must be safe for concurrent use; the caller keeps
// ownership of the BPF maps it reads. The package imports no other crbpf
// package: orchestration code records its figures here, not the reverse.
//
// A daemon serves Set.Handler on /metrics; a CLI run records what it did and
// calls Set.WriteTextfile once it is done.
package metrics
