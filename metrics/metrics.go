package metrics

import (
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Checkpoint and restart results, the values of the result label.
const (
	ResultOK          = "ok"
	ResultError       = "error"
	ResultRefused     = "refused"     // the target was not checkpointable as it was
	ResultInterrupted = "interrupted" // a signal or a vanished target cut the run short
)

// Checkpoint modes, the values of the mode label. A checkpoint that failed
// before choosing a mode (Checkpoint.Mode == "") is counted with mode ModeNone.
const (
	ModePrecopy    = "precopy"
	ModeFullFreeze = "full-freeze"
	ModeNone       = "none"
)

// unknownLabel replaces result and mode values that are not one of the
// constants above, keeping the label sets bounded whatever a caller passes.
const unknownLabel = "unknown"

// BuildInfo is exported as the labels of crbpf_build_info. An empty GoVersion
// is replaced by the runtime's version.
type BuildInfo struct {
	Version, Revision, GoVersion string
}

// Round is one pre-copy round of a checkpoint.
type Round struct {
	// DirtyPages is the number of pages found dirty and copied in the round.
	DirtyPages uint64
	// Bytes is the number of bytes copied in the round. It is carried for
	// callers that log rounds; the exported per-round volume is DirtyPages.
	Bytes uint64
	// Duration is the wall-clock time the round took.
	Duration time.Duration
}

// Checkpoint is the outcome of one checkpoint, as recorded by ObserveCheckpoint.
type Checkpoint struct {
	// Result is one of ResultOK, ResultError, ResultRefused, ResultInterrupted.
	Result string
	// Mode is ModePrecopy or ModeFullFreeze, "" when it failed before choosing.
	Mode string
	// Duration is the whole checkpoint, from start to image written.
	Duration time.Duration
	// Freeze is the time the target was stopped: the downtime it saw.
	Freeze time.Duration
	// Rounds are the pre-copy rounds, in order; empty in full-freeze mode.
	Rounds []Round
	// PagesWritten and BytesWritten are the memory pages and image bytes written.
	PagesWritten, BytesWritten uint64
}

// Restart is the outcome of one restart, as recorded by ObserveRestart.
type Restart struct {
	// Result is ResultOK or ResultError (the other results are accepted too).
	Result string
	// Duration is the whole restart, from reading the image to the process resumed.
	Duration time.Duration
}

// Set is crbpf's metrics and the registry that holds them. Create it with New.
type Set struct {
	reg *prometheus.Registry

	checkpoints        *prometheus.CounterVec
	restarts           *prometheus.CounterVec
	cridsIssued        prometheus.Counter
	lastCRID           prometheus.Gauge
	checkpointDuration prometheus.Histogram
	freezeDuration     prometheus.Histogram
	restartDuration    prometheus.Histogram
	precopyRounds      prometheus.Histogram
	roundDirtyPages    prometheus.Histogram
	roundDuration      prometheus.Histogram
	pagesWritten       prometheus.Counter
	bytesWritten       prometheus.Counter
	inMemoryImages     prometheus.Gauge
	inMemoryBytes      prometheus.Gauge

	// lastCRIDSet and inMemorySet record whether this Set was given a value
	// for those gauges; WriteTextfile leaves unset ones as the file has them.
	lastCRIDSet, inMemorySet atomic.Bool

	// snapshotFamilies are the families WriteTextfile writes as they are
	// (scrape-time eBPF counters and build info), not merged.
	snapshotFamilies map[string]bool

	// flushMu serializes WriteTextfile on this Set; flushed holds the
	// cumulative counter and histogram values already added to a textfile.
	flushMu sync.Mutex
	flushed map[string]map[string]metricValue
}

// Buckets. Freeze is the downtime the target sees, so its buckets are finest
// between 0.5 ms and 50 ms, where precopy and full-freeze differ.
var (
	freezeBuckets = []float64{
		0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004,
		0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
		0.1, 0.25, 0.5, 1, 2.5, 5, 10,
	}
	checkpointBuckets = []float64{
		0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
	}
	restartBuckets = []float64{
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
	}
	roundDurationBuckets = []float64{
		0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
	}
	roundsBuckets    = prometheus.LinearBuckets(0, 1, 11)      // 0, 1, …, 10
	dirtyPageBuckets = prometheus.ExponentialBuckets(1, 4, 13) // 1, 4, …, 16Mi pages
	results          = []string{ResultOK, ResultError, ResultRefused, ResultInterrupted}
	restartResults   = []string{ResultOK, ResultError} // pre-registered; the others are accepted
)

// New returns a Set registered in a registry of its own, with every
// pre-declared series at 0 and crbpf_build_info set. A nil ebpf exports no
// eBPF metrics.
func New(info BuildInfo, ebpf EBPFSource) *Set {
	if info.GoVersion == "" {
		info.GoVersion = runtime.Version()
	}
	s := &Set{
		reg: prometheus.NewRegistry(),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crbpf_checkpoints_total",
			Help: "Checkpoints finished, by result and by mode (none: failed before choosing one).",
		}, []string{"result", "mode"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crbpf_restarts_total",
			Help: "Restarts finished, by result.",
		}, []string{"result"}),
		cridsIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crbpf_crids_issued_total",
			Help: "Checkpoint/restart IDs issued.",
		}),
		lastCRID: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crbpf_last_crid",
			Help: "The last checkpoint/restart ID issued.",
		}),
		checkpointDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crbpf_checkpoint_duration_seconds",
			Help:    "Wall-clock time of successful checkpoints, pre-copy rounds included.",
			Buckets: checkpointBuckets,
		}),
		freezeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crbpf_freeze_duration_seconds",
			Help:    "Time the target was stopped during successful checkpoints: the downtime it saw.",
			Buckets: freezeBuckets,
		}),
		restartDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crbpf_restart_duration_seconds",
			Help:    "Wall-clock time of successful restarts, from reading the image to the process resumed.",
			Buckets: restartBuckets,
		}),
		precopyRounds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crbpf_precopy_rounds",
			Help:    "Pre-copy rounds per successful precopy-mode checkpoint.",
			Buckets: roundsBuckets,
		}),
		roundDirtyPages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crbpf_precopy_round_dirty_pages",
			Help:    "Pages found dirty and copied per pre-copy round of successful checkpoints.",
			Buckets: dirtyPageBuckets,
		}),
		roundDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crbpf_precopy_round_duration_seconds",
			Help:    "Wall-clock time per pre-copy round of successful checkpoints.",
			Buckets: roundDurationBuckets,
		}),
		pagesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crbpf_pages_written_total",
			Help: "Memory pages written to images by successful checkpoints.",
		}),
		bytesWritten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crbpf_bytes_written_total",
			Help: "Image bytes written by successful checkpoints.",
		}),
		inMemoryImages: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crbpf_inmemory_images",
			Help: "Checkpoint images currently held in memory.",
		}),
		inMemoryBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "crbpf_inmemory_bytes",
			Help: "Bytes of checkpoint images currently held in memory.",
		}),
		snapshotFamilies: map[string]bool{buildInfoName: true},
		flushed:          map[string]map[string]metricValue{},
	}
	for _, r := range results {
		modes := []string{ModePrecopy, ModeFullFreeze}
		if r != ResultOK {
			modes = append(modes, ModeNone)
		}
		for _, m := range modes {
			s.checkpoints.WithLabelValues(r, m)
		}
	}
	for _, r := range restartResults {
		s.restarts.WithLabelValues(r)
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: buildInfoName,
		Help: "Always 1; the labels say which crbpf build is running.",
		ConstLabels: prometheus.Labels{
			"version": info.Version, "revision": info.Revision, "goversion": info.GoVersion,
		},
	})
	buildInfo.Set(1)
	s.reg.MustRegister(
		s.checkpoints, s.restarts, s.cridsIssued, s.lastCRID,
		s.checkpointDuration, s.freezeDuration, s.restartDuration,
		s.precopyRounds, s.roundDirtyPages, s.roundDuration,
		s.pagesWritten, s.bytesWritten, s.inMemoryImages, s.inMemoryBytes,
		buildInfo,
	)
	if ebpf != nil {
		c := newEBPFCollector(ebpf)
		s.reg.MustRegister(c)
		for _, name := range ebpfCounterNames {
			s.snapshotFamilies[name] = true
		}
	}
	return s
}

const buildInfoName = "crbpf_build_info"

// Registry returns the Set's own registry, for a caller that serves it with
// other handler options or adds collectors of its own (a daemon may add the
// Go and process collectors; a CLI run writing a textfile should not).
func (s *Set) Registry() *prometheus.Registry { return s.reg }

// Handler serves the Set's registry in the exposition format the scraper
// negotiates. A gathering error, a bug in a collector, is answered with HTTP
// 500 rather than a silently partial scrape; nothing is logged.
func (s *Set) Handler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.HTTPErrorOnError,
	})
}

// CRIDIssued counts one checkpoint/restart ID issued and exports crid as the
// last one.
func (s *Set) CRIDIssued(crid uint64) {
	s.cridsIssued.Inc()
	s.lastCRID.Set(float64(crid))
	s.lastCRIDSet.Store(true)
}

// SetLastCRID exports crid as the last one issued without counting an
// issuance: for a daemon starting on an existing counter.
func (s *Set) SetLastCRID(crid uint64) {
	s.lastCRID.Set(float64(crid))
	s.lastCRIDSet.Store(true)
}

// ObserveCheckpoint records one finished checkpoint: every result counts in
// crbpf_checkpoints_total; only ResultOK feeds the durations, rounds and
// volumes.
func (s *Set) ObserveCheckpoint(c Checkpoint) {
	result := checkLabel(c.Result, results...)
	mode := c.Mode
	if mode == "" {
		mode = ModeNone
	}
	mode = checkLabel(mode, ModePrecopy, ModeFullFreeze, ModeNone)
	s.checkpoints.WithLabelValues(result, mode).Inc()
	if result != ResultOK {
		return
	}
	s.checkpointDuration.Observe(c.Duration.Seconds())
	s.freezeDuration.Observe(c.Freeze.Seconds())
	if mode == ModePrecopy {
		s.precopyRounds.Observe(float64(len(c.Rounds)))
	}
	for _, r := range c.Rounds {
		s.roundDirtyPages.Observe(float64(r.DirtyPages))
		s.roundDuration.Observe(r.Duration.Seconds())
	}
	s.pagesWritten.Add(float64(c.PagesWritten))
	s.bytesWritten.Add(float64(c.BytesWritten))
}

// ObserveRestart records one finished restart: every result counts in
// crbpf_restarts_total; only ResultOK feeds crbpf_restart_duration_seconds.
func (s *Set) ObserveRestart(r Restart) {
	result := checkLabel(r.Result, results...)
	s.restarts.WithLabelValues(result).Inc()
	if result == ResultOK {
		s.restartDuration.Observe(r.Duration.Seconds())
	}
}

// SetInMemory exports the number and total size of the images held in memory.
func (s *Set) SetInMemory(images int, bytes uint64) {
	s.inMemoryImages.Set(float64(images))
	s.inMemoryBytes.Set(float64(bytes))
	s.inMemorySet.Store(true)
}

// checkLabel returns v if it is one of allowed, unknownLabel otherwise.
func checkLabel(v string, allowed ...string) string {
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	return unknownLabel
}
