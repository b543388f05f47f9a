package precopy

import "sort"

// Range is a page-aligned address range [Start, End).
type Range struct{ Start, End uint64 }

// rangeSet is a sorted set of disjoint, non-adjacent ranges.
type rangeSet struct{ r []Range }

// add inserts [start, end), merging with what it touches.
func (s *rangeSet) add(start, end uint64) {
	if start >= end {
		return
	}
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].End >= start })
	j := i
	for j < len(s.r) && s.r[j].Start <= end {
		start = min(start, s.r[j].Start)
		end = max(end, s.r[j].End)
		j++
	}
	s.r = append(s.r[:i], append([]Range{{start, end}}, s.r[j:]...)...)
}

// split returns the parts of [start, end) inside the set and outside it.
func (s *rangeSet) split(start, end uint64) (in, out []Range) {
	cur := start
	i := sort.Search(len(s.r), func(i int) bool { return s.r[i].End > start })
	for ; i < len(s.r) && s.r[i].Start < end && cur < end; i++ {
		a, b := max(s.r[i].Start, cur), min(s.r[i].End, end)
		if a > cur {
			out = append(out, Range{cur, a})
		}
		in = append(in, Range{a, b})
		cur = b
	}
	if cur < end {
		out = append(out, Range{cur, end})
	}
	return in, out
}

// remove deletes [start, end) from the set.
func (s *rangeSet) remove(start, end uint64) {
	var out []Range
	for _, r := range s.r {
		if r.End <= start || r.Start >= end {
			out = append(out, r)
			continue
		}
		if r.Start < start {
			out = append(out, Range{r.Start, start})
		}
		if r.End > end {
			out = append(out, Range{end, r.End})
		}
	}
	s.r = out
}
