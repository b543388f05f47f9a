package image

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// Validate checks the invariants of the format and the Max* limits (see
// docs/image-format.md) and returns the first violation as a
// *ValidationError, which matches ErrInvalid. Decode calls it on everything
// it reads and Encode on everything it writes.
func (img *Image) Validate() error {
	if err := img.validateHeader(); err != nil {
		return err
	}
	if err := img.validateMM(); err != nil {
		return err
	}
	if err := validateVMAs(img.VMAs); err != nil {
		return err
	}
	if err := img.validateTask(); err != nil {
		return err
	}
	if err := validateFiles(img.Files); err != nil {
		return err
	}
	if n := len(img.Stats.Rounds); n > MaxRounds {
		return invalid("stats", "%d rounds, limit %d", n, MaxRounds)
	}
	return img.validateChain()
}

// validateChain checks the spans of pages without data: sorted, inside
// their VMA, disjoint from each other and from the runs; inherited pages
// only with a parent; and the hash index covers every run.
func (img *Image) validateChain() error {
	var spans uint64
	for i := range img.VMAs {
		v := &img.VMAs[i]
		switch {
		case len(v.Zero) > 0 && v.Kind != KindFile:
			return invalid(vmaWhere(i, v), "kind %q cannot have zero spans (its pages without data are zero)", v.Kind)
		case len(v.Inherit) > 0 && img.Header.ParentCRID == 0:
			return invalid(vmaWhere(i, v), "inherited pages in an image without a parent")
		case len(v.Inherit) > 0 && !hasPageData(v.Kind):
			return invalid(vmaWhere(i, v), "kind %q cannot inherit pages", v.Kind)
		}
		if spans += uint64(len(v.Zero) + len(v.Inherit)); spans > MaxPageRuns {
			return invalid(vmaWhere(i, v), "more than %d zero and inherited spans in the image", MaxPageRuns)
		}
		// Every page has at most one source: merge the three sorted lists.
		type rng struct {
			start, end uint64
			what       string
		}
		all := make([]rng, 0, len(v.Pages)+len(v.Zero)+len(v.Inherit))
		for j, r := range v.Pages {
			all = append(all, rng{r.Addr, r.End(), fmt.Sprintf("page run %d", j)})
		}
		for _, l := range []struct {
			name  string
			spans []Span
		}{{"zero span", v.Zero}, {"inherited span", v.Inherit}} {
			for j, s := range l.spans {
				switch {
				case s.NPages == 0:
					return invalid(vmaWhere(i, v), "%s %d at %#x has no pages", l.name, j, s.Addr)
				case s.Addr%PageSize != 0:
					return invalid(vmaWhere(i, v), "%s %d at %#x not page aligned", l.name, j, s.Addr)
				case s.Addr < v.Start || s.Addr >= v.End || s.NPages > (v.End-s.Addr)/PageSize:
					return invalid(vmaWhere(i, v), "%s %d at %#x (%d pages) outside the mapping", l.name, j, s.Addr, s.NPages)
				case j > 0 && s.Addr < l.spans[j-1].End():
					return invalid(vmaWhere(i, v), "%s %d at %#x unsorted or overlapping", l.name, j, s.Addr)
				}
				all = append(all, rng{s.Addr, s.End(), fmt.Sprintf("%s %d", l.name, j)})
			}
		}
		if len(v.Zero)+len(v.Inherit) == 0 {
			continue
		}
		slices.SortStableFunc(all, func(a, b rng) int { return cmp.Compare(a.start, b.start) })
		for k := 1; k < len(all); k++ {
			if all[k].start < all[k-1].end {
				return invalid(vmaWhere(i, v), "%s at %#x overlaps %s", all[k].what, all[k].start, all[k-1].what)
			}
		}
	}
	if h := img.Hashes; h != nil {
		if end := img.DataEnd(); h.Pages < end/PageSize {
			return invalid("hashes", "%d page hashes for %d page slots of data", h.Pages, end/PageSize)
		}
		if h.Pages > MaxTotalPages*4 {
			return invalid("hashes", "%d page hashes, limit %d", h.Pages, uint64(MaxTotalPages*4))
		}
		if len(h.SHA256) != 64 {
			return invalid("hashes", "sha256 %q is not 64 hex digits", h.SHA256)
		}
	}
	return nil
}

func (img *Image) validateHeader() error {
	h := &img.Header
	switch {
	case h.CRID == 0:
		return invalid("header", "checkpoint id is 0")
	case h.ParentCRID >= h.CRID:
		return invalid("header", "parent checkpoint id %d is not below the checkpoint id %d", h.ParentCRID, h.CRID)
	case h.Arch == "":
		return invalid("header", "no architecture")
	case h.Time.Year() < 0 || h.Time.Year() > 9999:
		return invalid("header", "time %v outside years 0-9999", h.Time)
	case len(h.Cmdline) > MaxCmdline:
		return invalid("header", "%d command-line arguments, limit %d", len(h.Cmdline), MaxCmdline)
	}
	return nil
}

func (img *Image) validateMM() error {
	a := img.MM.Auxv
	switch {
	case len(a) > MaxAuxv:
		return invalid("mm", "auxv has %d words, limit %d", len(a), MaxAuxv)
	case len(a)%2 != 0:
		return invalid("mm", "auxv has an odd number of words (%d)", len(a))
	case len(a) > 0 && a[len(a)-2] != 0:
		return invalid("mm", "auxv does not end with AT_NULL")
	}
	return nil
}

// hasPageData reports whether VMAs of kind may have page runs. The others
// are re-created without data: shared file mappings from the file, the
// vvar and vsyscall areas by the kernel.
func hasPageData(kind string) bool {
	switch kind {
	case KindAnon, KindFile, KindShmemAnon, KindVDSO:
		return true
	}
	return false
}

func knownVMAKind(kind string) bool {
	switch kind {
	case KindAnon, KindFile, KindFileShared, KindShmemAnon, KindVDSO, KindVVAR, KindVVARVclock, KindVsyscall:
		return true
	}
	return false
}

// dataSpan is the range of the pages file holding one run.
type dataSpan struct {
	off, end uint64
	vma, run int
}

func vmaWhere(i int, v *VMA) string { return fmt.Sprintf("vma %d [%#x-%#x]", i, v.Start, v.End) }

func validateVMAs(vmas []VMA) error {
	if len(vmas) > MaxVMAs {
		return invalid("vmas", "%d mappings, limit %d", len(vmas), MaxVMAs)
	}
	var (
		runs, pages uint64
		// Data ranges are checked for overlap in one pass while they
		// increase in VMA order (what a single-pass writer produces);
		// otherwise they are sorted afterwards.
		dataSorted  = true
		prevDataEnd uint64
	)
	for i := range vmas {
		v := &vmas[i]
		switch {
		case v.Start%PageSize != 0 || v.End%PageSize != 0:
			return invalid(vmaWhere(i, v), "not page aligned")
		case v.Start >= v.End:
			return invalid(vmaWhere(i, v), "empty or inverted range")
		case i > 0 && v.Start < vmas[i-1].End:
			return invalid(vmaWhere(i, v), "starts below the end %#x of vma %d (unsorted or overlapping)", vmas[i-1].End, i-1)
		case !knownVMAKind(v.Kind):
			return invalid(vmaWhere(i, v), "unknown kind %q", v.Kind)
		case (v.Kind == KindFile || v.Kind == KindFileShared) && v.Path == "":
			return invalid(vmaWhere(i, v), "file-backed mapping without a path")
		case v.Offset%PageSize != 0:
			return invalid(vmaWhere(i, v), "file offset %#x not page aligned", v.Offset)
		case len(v.Pages) > 0 && !hasPageData(v.Kind):
			return invalid(vmaWhere(i, v), "kind %q cannot have page data", v.Kind)
		}
		if runs += uint64(len(v.Pages)); runs > MaxPageRuns {
			return invalid(vmaWhere(i, v), "more than %d page runs in the image", MaxPageRuns)
		}
		for j := range v.Pages {
			r := &v.Pages[j]
			switch {
			case r.NPages == 0:
				return invalid(vmaWhere(i, v), "page run %d at %#x has no pages", j, r.Addr)
			case r.Addr%PageSize != 0:
				return invalid(vmaWhere(i, v), "page run %d at %#x not page aligned", j, r.Addr)
			case r.Addr < v.Start || r.Addr >= v.End || r.NPages > (v.End-r.Addr)/PageSize:
				return invalid(vmaWhere(i, v), "page run %d at %#x (%d pages) outside the mapping", j, r.Addr, r.NPages)
			case j > 0 && r.Addr < v.Pages[j-1].End():
				return invalid(vmaWhere(i, v), "page run %d at %#x starts below the end %#x of page run %d (unsorted or overlapping)",
					j, r.Addr, v.Pages[j-1].End(), j-1)
			case uint64(len(r.CRC)) != r.NPages:
				return invalid(vmaWhere(i, v), "page run %d at %#x has %d checksums for %d pages", j, r.Addr, len(r.CRC), r.NPages)
			case r.DataOff%PageSize != 0:
				return invalid(vmaWhere(i, v), "page run %d at %#x: data offset %#x not page aligned", j, r.Addr, r.DataOff)
			case r.DataOff > math.MaxInt64-r.Len(): // r.Len() cannot overflow: the run is inside the VMA
				return invalid(vmaWhere(i, v), "page run %d at %#x: data offset %#x beyond the largest file offset", j, r.Addr, r.DataOff)
			}
			if pages += r.NPages; pages > MaxTotalPages {
				return invalid(vmaWhere(i, v), "more than %d pages of data in the image", uint64(MaxTotalPages))
			}
			if r.DataOff < prevDataEnd {
				dataSorted = false
			}
			prevDataEnd = r.DataEnd()
		}
	}
	if dataSorted {
		return nil
	}
	spans := make([]dataSpan, 0, runs)
	for i := range vmas {
		for j, r := range vmas[i].Pages {
			spans = append(spans, dataSpan{off: r.DataOff, end: r.DataEnd(), vma: i, run: j})
		}
	}
	slices.SortFunc(spans, func(a, b dataSpan) int { return cmp.Compare(a.off, b.off) })
	for k := 1; k < len(spans); k++ {
		if a, b := spans[k-1], spans[k]; b.off < a.end {
			v := &vmas[b.vma]
			return invalid(vmaWhere(b.vma, v), "page run %d at %#x: data [%#x-%#x) in %s overlaps page run %d of vma %d",
				b.run, v.Pages[b.run].Addr, b.off, b.end, PagesFile, a.run, a.vma)
		}
	}
	return nil
}

func (img *Image) validateTask() error {
	t := &img.Task
	if img.Header.Arch == "amd64" && len(t.Regs) != AMD64RegsSize {
		return invalid("task", "registers are %d bytes, want %d (x86_64 user_regs_struct)", len(t.Regs), AMD64RegsSize)
	}
	if len(t.Regs) > MaxRegset {
		return invalid("task", "registers are %d bytes, limit %d", len(t.Regs), MaxRegset)
	}
	if len(t.XState) > MaxRegset {
		return invalid("task", "xstate is %d bytes, limit %d", len(t.XState), MaxRegset)
	}
	if len(t.SigActions) > MaxSignal {
		return invalid("task", "%d signal actions, limit %d", len(t.SigActions), MaxSignal)
	}
	for i, a := range t.SigActions {
		if a.Signo < 1 || a.Signo > MaxSignal {
			return invalid("task", "signal action %d: signal %d out of range 1-%d", i, a.Signo, MaxSignal)
		}
		if i > 0 && a.Signo <= t.SigActions[i-1].Signo {
			return invalid("task", "signal action %d: signal %d unsorted or duplicate", i, a.Signo)
		}
	}
	for _, q := range []struct {
		name string
		sigs []Siginfo
	}{{"pending", t.Pending}, {"shared_pending", t.SharedPend}} {
		if len(q.sigs) > MaxPending {
			return invalid("task", "%d %s signals, limit %d", len(q.sigs), q.name, MaxPending)
		}
		for i, s := range q.sigs {
			if len(s.Raw) != SiginfoSize {
				return invalid("task", "%s signal %d: siginfo is %d bytes, want %d", q.name, i, len(s.Raw), SiginfoSize)
			}
		}
	}
	if len(t.Rlimits) > MaxRlimits {
		return invalid("task", "%d rlimits, limit %d", len(t.Rlimits), MaxRlimits)
	}
	for i, r := range t.Rlimits {
		if r.Resource < 0 || r.Resource >= MaxRlimits {
			return invalid("task", "rlimit %d: resource %d out of range", i, r.Resource)
		}
	}
	if len(t.ITimers) > MaxITimers {
		return invalid("task", "%d interval timers, limit %d", len(t.ITimers), MaxITimers)
	}
	for i, it := range t.ITimers {
		if it.Which < 0 || it.Which >= MaxITimers {
			return invalid("task", "interval timer %d: which %d out of range", i, it.Which)
		}
	}
	if len(t.PosixTimers) > MaxPosixTimer {
		return invalid("task", "%d posix timers, limit %d", len(t.PosixTimers), MaxPosixTimer)
	}
	if t.Creds != nil && len(t.Creds.Groups) > MaxGroups {
		return invalid("task", "%d supplementary groups, limit %d", len(t.Creds.Groups), MaxGroups)
	}
	return nil
}

func validateFiles(files []File) error {
	if len(files) > MaxFiles {
		return invalid("files", "%d files, limit %d", len(files), MaxFiles)
	}
	for i := range files {
		f := &files[i]
		where := fmt.Sprintf("file %d (fd %d)", i, f.FD)
		switch {
		case f.FD < 0:
			return invalid(where, "negative fd")
		case i > 0 && f.FD <= files[i-1].FD:
			return invalid(where, "not above fd %d of file %d (unsorted or duplicate)", files[i-1].FD, i-1)
		}
		switch f.Kind {
		case FileStdio, FileSelfConn:
		case FileRegular, FileChar, FileDir:
			if f.Path == "" {
				return invalid(where, "%s without a path", f.Kind)
			}
		default:
			return invalid(where, "unknown kind %q", f.Kind)
		}
	}
	return nil
}
