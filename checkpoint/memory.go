package checkpoint

import (
	"fmt"
	"os"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"github.com/crbpf/crbpf/writer"
)

// chunkSize bounds one process_vm_readv; DESIGN.md measured large chunks as
// the fast path (~5 GB/s at 64 MiB).
const chunkSize = 64 << 20

// pageRange is a run of pages [start, end) to save.
type pageRange struct{ start, end uint64 }

// memDumper copies the target's pages into an image writer.
type memDumper struct {
	pid     int
	w       *writer.Writer
	pagemap *os.File
	mem     *os.File // /proc/PID/mem, for mappings process_vm_readv cannot read
	pm      []procfs.PagemapEntry

	// Reading the next chunk overlaps with writing the previous one: two
	// buffers, at most one write in flight (so runs stay in order).
	bufs     [2][]byte
	cur      int
	inflight chan error
}

// dumpBuffers allocates the copy buffers and touches every page of them:
// done before the target is stopped, so that the first touch of fresh
// memory (slow on VMs) is not paid while it is frozen.
func dumpBuffers() [2][]byte {
	var b [2][]byte
	for i := range b {
		b[i] = make([]byte, chunkSize)
		for j := 0; j < len(b[i]); j += image.PageSize {
			b[i][j] = 1
		}
	}
	return b
}

func newMemDumper(pid int, w *writer.Writer, bufs [2][]byte) (*memDumper, error) {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, fmt.Errorf("open pagemap: %w", err)
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		pm.Close()
		return nil, fmt.Errorf("open memory: %w", err)
	}
	return &memDumper{pid: pid, w: w, pagemap: pm, mem: mem, bufs: bufs}, nil
}

// Close waits for a write still in flight and closes the files.
func (d *memDumper) Close() error {
	d.flush()
	d.mem.Close()
	return d.pagemap.Close()
}

// flush waits for the write in flight, if any.
func (d *memDumper) flush() error {
	if d.inflight == nil {
		return nil
	}
	err := <-d.inflight
	d.inflight = nil
	return err
}

// dump saves the pages of every VMA that restart cannot get elsewhere and
// records their runs in the VMAs.
func (d *memDumper) dump(vmas []image.VMA) error {
	for i := range vmas {
		v := &vmas[i]
		var ranges []pageRange
		skipZero := true
		switch v.Kind {
		case image.KindVsyscall, image.KindVVAR, image.KindVVARVclock, image.KindFileShared:
			continue
		case image.KindVDSO:
			// Saved so that restart can refuse a kernel whose vDSO differs.
			ranges, skipZero = []pageRange{{v.Start, v.End}}, false
		case image.KindShmemAnon:
			// Pages of shared memory are often not in this process's page
			// tables: read it all, zero pages are skipped.
			ranges = []pageRange{{v.Start, v.End}}
		case image.KindAnon:
			r, err := d.selectPages(v, func(e procfs.PagemapEntry) bool { return e.Present() || e.Swapped() })
			if err != nil {
				return err
			}
			ranges = r
		case image.KindFile:
			// Only the private copies the process made: a page that is still
			// the file's comes back from the file. A private copy that is all
			// zero must be stored, or restart would show the file's bytes.
			skipZero = false
			r, err := d.selectPages(v, func(e procfs.PagemapEntry) bool {
				return (e.Present() || e.Swapped()) && !e.FileOrSharedAnon()
			})
			if err != nil {
				return err
			}
			ranges = r
		default:
			return fmt.Errorf("dump %#x-%#x: unknown kind %q", v.Start, v.End, v.Kind)
		}
		for _, r := range ranges {
			if err := d.copyRange(v, r, skipZero); err != nil {
				return err
			}
		}
	}
	return d.flush()
}

func (d *memDumper) selectPages(v *image.VMA, keep func(procfs.PagemapEntry) bool) ([]pageRange, error) {
	var out []pageRange
	const step = 1 << 30 // bound the pagemap buffer to 2 MiB of entries
	for start := v.Start; start < v.End; start += step {
		end := min(start+step, v.End)
		entries, err := procfs.ReadPagemapFile(d.pagemap, start, end, d.pm[:0])
		if err != nil {
			return nil, fmt.Errorf("read pagemap of %#x-%#x: %w", start, end, err)
		}
		d.pm = entries
		for i, e := range entries {
			if !keep(e) {
				continue
			}
			addr := start + uint64(i)*image.PageSize
			if n := len(out); n > 0 && out[n-1].end == addr {
				out[n-1].end += image.PageSize
			} else {
				out = append(out, pageRange{addr, addr + image.PageSize})
			}
		}
	}
	return out, nil
}

func (d *memDumper) copyRange(v *image.VMA, r pageRange, skipZero bool) error {
	readable := v.Prot&0x1 != 0
	for addr := r.start; addr < r.end; {
		n := min(r.end-addr, chunkSize)
		buf := d.bufs[d.cur][:n]
		var got int
		var err error
		if readable {
			got, err = ptrace.ReadMem(d.pid, addr, buf)
		} else {
			got, err = d.mem.ReadAt(buf, int64(addr))
		}
		if err != nil {
			return fmt.Errorf("read %s %#x-%#x: %w", v.Name, addr, addr+n, err)
		}
		if uint64(got) != n {
			return fmt.Errorf("read %s %#x-%#x: short read of %d bytes", v.Name, addr, addr+n, got)
		}
		if err := d.flush(); err != nil {
			return err
		}
		done := make(chan error, 1)
		d.inflight = done
		go func(addr uint64) {
			runs, err := d.w.WritePages(addr, buf, skipZero)
			v.Pages = image.AppendRuns(v.Pages, runs...)
			done <- err
		}(addr)
		d.cur ^= 1
		addr += n
	}
	return nil
}
