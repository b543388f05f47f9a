package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// WriteTextfile merges the Set's figures into the node_exporter
// textfile-collector file at path (which should end in .prom), for CLI runs
// that have no daemon to be scraped.
//
// Under an exclusive flock on path+".lock" (created 0644 if missing, never
// removed), it parses the existing file, if any, and:
//   - adds the Set's counters and histograms (bucket counts, sum and count),
//     label set by label set, so that runs accumulate;
//   - replaces the Set's gauges, except crbpf_last_crid and the
//     crbpf_inmemory_* gauges when this Set was never given a value for them;
//   - writes the scrape-time eBPF counters and crbpf_build_info as they are;
//   - keeps every other family of the file unchanged.
//
// The result is written to a temporary file in the same directory and
// renamed over path with mode 0644, so node_exporter never reads a partial
// file. A file that does not parse, or whose families conflict with the Set's
// (another type, other buckets), is an error and is left unchanged.
//
// The Set remembers what it has written: calling WriteTextfile again adds
// only what was observed since, so a long CLI run may write after every
// checkpoint. Write one Set to one path only.
func (s *Set) WriteTextfile(path string) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()

	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open textfile lock: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := flockExclusive(lock); err != nil {
		return fmt.Errorf("lock textfile %s: %w", path, err)
	}

	ours, err := s.reg.Gather()
	if err != nil {
		return fmt.Errorf("gather metrics for textfile %s: %w", path, err)
	}
	existing, err := readTextfile(path)
	if err != nil {
		return err
	}
	merged, flushed, err := s.merge(existing, ours)
	if err != nil {
		return fmt.Errorf("merge metrics into textfile %s, left unchanged: %w", path, err)
	}
	if err := writeFileAtomic(path, merged); err != nil {
		return fmt.Errorf("write textfile %s: %w", path, err)
	}
	s.flushed = flushed
	return nil
}

func flockExclusive(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return os.NewSyscallError("flock", err)
		}
	}
}

// readTextfile parses the file at path; a missing file is an empty one.
func readTextfile(path string) (map[string]*dto.MetricFamily, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*dto.MetricFamily{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read textfile: %w", err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("textfile %s does not parse, left unchanged: %w", path, err)
	}
	return fams, nil
}

// merge combines the file's families with the Set's gathered ones. It returns
// the families to write, sorted by name, and the cumulative counter and
// histogram values of the Set they include.
func (s *Set) merge(existing map[string]*dto.MetricFamily, ours []*dto.MetricFamily) ([]*dto.MetricFamily, map[string]map[string]metricValue, error) {
	out := make([]*dto.MetricFamily, 0, len(existing)+len(ours))
	flushed := map[string]map[string]metricValue{}
	for _, f := range ours {
		name := f.GetName()
		old, inFile := existing[name]
		delete(existing, name)
		switch {
		case s.snapshotFamilies[name]:
			out = append(out, f)
		case f.GetType() == dto.MetricType_GAUGE:
			if inFile && !s.gaugeWasSet(name) {
				out = append(out, old)
			} else {
				out = append(out, f)
			}
		case f.GetType() == dto.MetricType_COUNTER || f.GetType() == dto.MetricType_HISTOGRAM:
			if inFile && old.GetType() != f.GetType() {
				return nil, nil, fmt.Errorf("%s is a %s in the file, a %s here", name, old.GetType(), f.GetType())
			}
			m, cur, err := s.accumulate(f, old)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, m)
			flushed[name] = cur
		default:
			return nil, nil, fmt.Errorf("%s: cannot merge a %s", name, f.GetType())
		}
	}
	for _, f := range existing {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out, flushed, nil
}

func (s *Set) gaugeWasSet(name string) bool {
	switch name {
	case "crbpf_last_crid":
		return s.lastCRIDSet.Load()
	case "crbpf_inmemory_images", "crbpf_inmemory_bytes":
		return s.inMemorySet.Load()
	}
	return true
}

// accumulate returns f's family with, for each label set, the file's value
// (old may be nil) plus what the Set counted since its last write; label sets
// only the file has are kept. It also returns f's cumulative values.
func (s *Set) accumulate(f, old *dto.MetricFamily) (*dto.MetricFamily, map[string]metricValue, error) {
	t := f.GetType()
	fileValues := map[string]*dto.Metric{}
	for _, m := range old.GetMetric() {
		fileValues[labelKey(m)] = m
	}
	cur := map[string]metricValue{}
	merged := &dto.MetricFamily{Name: f.Name, Help: f.Help, Type: f.Type}
	for _, m := range f.GetMetric() {
		key := labelKey(m)
		v := valueOf(t, m)
		cur[key] = v
		sum, err := v.add(s.flushed[f.GetName()][key], -1)
		if err != nil {
			return nil, nil, err
		}
		if fm, ok := fileValues[key]; ok {
			delete(fileValues, key)
			if sum, err = sum.add(valueOf(t, fm), +1); err != nil {
				return nil, nil, err
			}
		}
		merged.Metric = append(merged.Metric, sum.metric(t, m.GetLabel()))
	}
	for _, m := range old.GetMetric() {
		if _, onlyInFile := fileValues[labelKey(m)]; onlyInFile {
			merged.Metric = append(merged.Metric, m)
		}
	}
	sort.SliceStable(merged.Metric, func(i, j int) bool {
		return labelKey(merged.Metric[i]) < labelKey(merged.Metric[j])
	})
	return merged, cur, nil
}

// labelKey identifies a metric's label set within its family.
func labelKey(m *dto.Metric) string {
	pairs := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		pairs = append(pairs, l.GetName()+"\xff"+l.GetValue())
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "\xfe")
}

// metricValue is a counter's value or a classic histogram's counts, in
// float64 so that values from the file and from the Set combine alike.
type metricValue struct {
	value      float64   // counter
	count, sum float64   // histogram
	bounds     []float64 // finite upper bounds, ascending
	cumulative []float64 // cumulative count per bound
}

func valueOf(t dto.MetricType, m *dto.Metric) metricValue {
	if t == dto.MetricType_COUNTER {
		return metricValue{value: m.GetCounter().GetValue()}
	}
	h := m.GetHistogram()
	v := metricValue{count: float64(h.GetSampleCount()) + h.GetSampleCountFloat(), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue // implied by count
		}
		v.bounds = append(v.bounds, b.GetUpperBound())
		v.cumulative = append(v.cumulative, float64(b.GetCumulativeCount())+b.GetCumulativeCountFloat())
	}
	return v
}

// add returns v + sign×o. A histogram o without buckets (a zero metricValue)
// fits any v; otherwise the bucket bounds must be the same.
func (v metricValue) add(o metricValue, sign float64) (metricValue, error) {
	r := metricValue{
		value:      v.value + sign*o.value,
		count:      v.count + sign*o.count,
		sum:        v.sum + sign*o.sum,
		bounds:     v.bounds,
		cumulative: slices.Clone(v.cumulative),
	}
	if o.bounds == nil {
		return r, nil
	}
	if !slices.Equal(v.bounds, o.bounds) {
		return metricValue{}, fmt.Errorf("histogram buckets differ: %v here, %v in the file", v.bounds, o.bounds)
	}
	for i := range r.cumulative {
		r.cumulative[i] += sign * o.cumulative[i]
	}
	return r, nil
}

func (v metricValue) metric(t dto.MetricType, labels []*dto.LabelPair) *dto.Metric {
	m := &dto.Metric{Label: labels}
	if t == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: proto.Float64(v.value)}
		return m
	}
	h := &dto.Histogram{SampleCount: proto.Uint64(uint64(v.count)), SampleSum: proto.Float64(v.sum)}
	for i, b := range v.bounds {
		h.Bucket = append(h.Bucket, &dto.Bucket{
			UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(uint64(v.cumulative[i])),
		})
	}
	m.Histogram = h
	return m
}

// writeFileAtomic writes fams in the text format to a temporary file beside
// path and renames it over path, mode 0644. The temporary name does not end
// in .prom, so node_exporter ignores it.
func writeFileAtomic(path string, fams []*dto.MetricFamily) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriter(tmp)
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(w, f); err != nil {
			return fmt.Errorf("encode %s: %w", f.GetName(), err)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
