package metrics

import (
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const ebpfWantTemplate = `
# HELP crbpf_ebpf_events_seen_total Write-tracking events the BPF programs saw.
# TYPE crbpf_ebpf_events_seen_total counter
crbpf_ebpf_events_seen_total %SEEN%
# HELP crbpf_ebpf_events_emitted_total Write-tracking events the BPF programs handed to user space.
# TYPE crbpf_ebpf_events_emitted_total counter
crbpf_ebpf_events_emitted_total 90
# HELP crbpf_ebpf_events_dropped_total Write-tracking events lost because the ring buffer was full.
# TYPE crbpf_ebpf_events_dropped_total counter
crbpf_ebpf_events_dropped_total 10
# HELP crbpf_ebpf_write_faults_total Write faults on tracked pages seen by the BPF programs.
# TYPE crbpf_ebpf_write_faults_total counter
crbpf_ebpf_write_faults_total 70
# HELP crbpf_ebpf_as_changes_total Address-space changes (mmap, munmap, mprotect, brk, mremap) seen in tracked processes.
# TYPE crbpf_ebpf_as_changes_total counter
crbpf_ebpf_as_changes_total 4
# HELP crbpf_ebpf_read_errors_total Scrapes whose reading of the eBPF counters from the BPF maps failed.
# TYPE crbpf_ebpf_read_errors_total counter
crbpf_ebpf_read_errors_total %ERRORS%
`

var ebpfNames = slices.Concat(ebpfCounterNames, []string{"crbpf_ebpf_read_errors_total"})

func TestEBPFCollectorReadsSourceAtScrape(t *testing.T) {
	var seen atomic.Uint64
	seen.Store(100)
	src := func() (EBPFCounters, error) {
		return EBPFCounters{Seen: seen.Load(), Emitted: 90, Dropped: 10, WriteFaults: 70, ASChanges: 4}, nil
	}
	want := func(seen, errs string) *strings.Reader {
		return strings.NewReader(strings.NewReplacer("%SEEN%", seen, "%ERRORS%", errs).Replace(ebpfWantTemplate))
	}
	if err := testutil.CollectAndCompare(newEBPFCollector(src), want("100", "0")); err != nil {
		t.Error(err)
	}
	s := New(testBuild, src)
	if err := testutil.GatherAndCompare(s.Registry(), want("100", "0"), ebpfNames...); err != nil {
		t.Error(err)
	}
	seen.Store(250) // the next scrape reads the maps again
	if err := testutil.GatherAndCompare(s.Registry(), want("250", "0"), ebpfNames...); err != nil {
		t.Error(err)
	}
}

func TestEBPFCollectorReadError(t *testing.T) {
	fail := true
	src := func() (EBPFCounters, error) {
		if fail {
			return EBPFCounters{}, errors.New("map lookup: operation not permitted")
		}
		return EBPFCounters{Seen: 100, Emitted: 90, Dropped: 10, WriteFaults: 70, ASChanges: 4}, nil
	}
	s := New(testBuild, src)
	wantErrorsOnly := func(n string) *strings.Reader {
		return strings.NewReader(`
# HELP crbpf_ebpf_read_errors_total Scrapes whose reading of the eBPF counters from the BPF maps failed.
# TYPE crbpf_ebpf_read_errors_total counter
crbpf_ebpf_read_errors_total ` + n + "\n")
	}
	if err := testutil.GatherAndCompare(s.Registry(), wantErrorsOnly("1"), ebpfNames...); err != nil {
		t.Error(err)
	}
	if err := testutil.GatherAndCompare(s.Registry(), wantErrorsOnly("2"), ebpfNames...); err != nil {
		t.Error(err)
	}
	fail = false
	want := strings.NewReplacer("%SEEN%", "100", "%ERRORS%", "2").Replace(ebpfWantTemplate)
	if err := testutil.GatherAndCompare(s.Registry(), strings.NewReader(want), ebpfNames...); err != nil {
		t.Error(err)
	}
}
