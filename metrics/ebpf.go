package metrics

import "github.com/prometheus/client_golang/prometheus"

// EBPFCounters are cumulative counters read from the BPF maps at scrape time.
type EBPFCounters struct {
	// Seen is the number of write-tracking events the BPF programs saw.
	Seen uint64
	// Emitted is the number of events handed to user space.
	Emitted uint64
	// Dropped is the number of events lost because the ring buffer was full.
	Dropped uint64
	// WriteFaults is the number of write faults on tracked pages.
	WriteFaults uint64
	// ASChanges is the number of address-space changes (mmap, munmap,
	// mprotect, brk, mremap) seen in tracked processes.
	ASChanges uint64
}

// EBPFSource reads the eBPF counters. It is called on every scrape, possibly
// from several goroutines at once, and must be safe for concurrent use. An
// error leaves the eBPF counters out of that scrape and counts in
// crbpf_ebpf_read_errors_total.
type EBPFSource func() (EBPFCounters, error)

var ebpfCounterNames = []string{
	"crbpf_ebpf_events_seen_total",
	"crbpf_ebpf_events_emitted_total",
	"crbpf_ebpf_events_dropped_total",
	"crbpf_ebpf_write_faults_total",
	"crbpf_ebpf_as_changes_total",
}

// ebpfCollector turns an EBPFSource into const counters at scrape time.
type ebpfCollector struct {
	source     EBPFSource
	descs      [5]*prometheus.Desc // in ebpfCounterNames order
	readErrors prometheus.Counter
}

func newEBPFCollector(source EBPFSource) *ebpfCollector {
	help := [5]string{
		"Write-tracking events the BPF programs saw.",
		"Write-tracking events the BPF programs handed to user space.",
		"Write-tracking events lost because the ring buffer was full.",
		"Write faults on tracked pages seen by the BPF programs.",
		"Address-space changes (mmap, munmap, mprotect, brk, mremap) seen in tracked processes.",
	}
	c := &ebpfCollector{
		source: source,
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crbpf_ebpf_read_errors_total",
			Help: "Scrapes whose reading of the eBPF counters from the BPF maps failed.",
		}),
	}
	for i, name := range ebpfCounterNames {
		c.descs[i] = prometheus.NewDesc(name, help[i], nil, nil)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *ebpfCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	c.readErrors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *ebpfCollector) Collect(ch chan<- prometheus.Metric) {
	v, err := c.source()
	if err != nil {
		c.readErrors.Inc()
	} else {
		values := [5]uint64{v.Seen, v.Emitted, v.Dropped, v.WriteFaults, v.ASChanges}
		for i, d := range c.descs {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(values[i]))
		}
	}
	c.readErrors.Collect(ch)
}
