package image

// Len returns the length of the mapping in bytes.
func (v VMA) Len() uint64 { return v.End - v.Start }

// Contains reports whether addr lies inside the mapping.
func (v VMA) Contains(addr uint64) bool { return addr >= v.Start && addr < v.End }

// Len returns the length of the run in bytes (in memory and in the pages file).
func (r PageRun) Len() uint64 { return r.NPages * PageSize }

// End returns the address just past the run.
func (r PageRun) End() uint64 { return r.Addr + r.Len() }

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
