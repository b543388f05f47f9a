package image

// Len returns the length of the mapping in bytes.
func (v VMA) Len() uint64 { return v.End - v.Start }

// Contains reports whether addr lies inside the mapping.
func (v VMA) Contains(addr uint64) bool { return addr >= v.Start && addr < v.End }

// Len returns the length of the run in bytes (in memory and in the pages file).
func (r PageRun) Len() uint64 { return r.NPages * PageSize }

// End returns the address just past the run.
func (r PageRun) End() uint64 { return r.Addr + r.Len() }

// End returns the address just past the span.
func (s Span) End() uint64 { return s.Addr + s.NPages*PageSize }

// DataEnd returns the offset in the pages file just past the run's data.
func (r PageRun) DataEnd() uint64 { return r.DataOff + r.Len() }

// TotalPages returns the number of pages stored in the pages file for img:
// the sum of NPages over every run of every VMA.
func (img *Image) TotalPages() uint64 {
	var n uint64
	for i := range img.VMAs {
		for _, r := range img.VMAs[i].Pages {
			n += r.NPages
		}
	}
	return n
}

// DataEnd returns the minimum size of the pages file: the largest DataEnd
// of any run, 0 for an image without page data.
func (img *Image) DataEnd() uint64 {
	var end uint64
	for i := range img.VMAs {
		for _, r := range img.VMAs[i].Pages {
			end = max(end, r.DataEnd())
		}
	}
	return end
}

// AppendRuns appends runs to dst, merging each run into the last one when
// it continues it both in memory and in the pages file (as the runs of
// consecutive writer.WritePages calls for one mapping usually do). Fewer
// runs mean fewer preads at restore. A merged run's CRC slice is a new
// allocation; dst's other runs are not modified.
func AppendRuns(dst []PageRun, runs ...PageRun) []PageRun {
	for _, r := range runs {
		if k := len(dst) - 1; k >= 0 && dst[k].End() == r.Addr && dst[k].DataEnd() == r.DataOff {
			last := &dst[k]
			crc := make([]uint32, 0, len(last.CRC)+len(r.CRC))
			last.CRC = append(append(crc, last.CRC...), r.CRC...)
			last.NPages += r.NPages
			continue
		}
		dst = append(dst, r)
	}
	return dst
}

// AppendSpan appends [addr, end) to dst, extending the last span when it
// ends at addr.
func AppendSpan(dst []Span, addr, end uint64) []Span {
	if addr >= end {
		return dst
	}
	if k := len(dst) - 1; k >= 0 && dst[k].End() == addr {
		dst[k].NPages += (end - addr) / PageSize
		return dst
	}
	return append(dst, Span{Addr: addr, NPages: (end - addr) / PageSize})
}
