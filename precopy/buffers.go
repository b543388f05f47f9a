//go:build linux

package precopy

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugePage is the size of a transparent huge page on x86-64.
const hugePage = 2 << 20

// Buffers are the two copy buffers of a Copier (BufferSize each), outside
// the Go heap, in one anonymous mapping the kernel is asked to back with
// transparent huge pages (MADV_HUGEPAGE) and whose every page NewBuffers
// touches, so that the first touch of fresh memory happens when the caller
// chooses, before the target is frozen.
//
// Why huge pages: a page fault costs 17 µs on the development VM (a PVM
// guest), so touching 128 MiB of 4 KiB pages took 0.54-0.65 s of every
// checkpoint; with huge pages (THP "madvise" or "always") it took 8-9 ms,
// or 0.25-0.42 s when the huge pages came from memory the guest had not
// used before. Where the kernel gives no huge pages, the buffers are plain
// pages, as with make.
type Buffers struct {
	mem    []byte // the whole mapping
	chunks [2][]byte
}

// MinBufferSize is the smallest BufferSize: the two buffers also stage the
// pages of the final copy after pre-copy, and a target may grow during the
// checkpoint; 16 MiB of staging holds a 10 ms final copy here.
const MinBufferSize = 8 << 20

// BufferSize is the size of each copy buffer for a target with resident
// bytes of memory: ChunkSize, or less for a target that fits in less (in
// whole huge pages, at least MinBufferSize). Touching two ChunkSize buffers
// cost a small target 8-9 ms here, up to 0.4 s when the host backed them
// with memory it had not handed out before.
func BufferSize(resident uint64) int {
	n := (resident + hugePage - 1) / hugePage * hugePage
	return int(min(max(n, MinBufferSize), ChunkSize))
}

// NewBuffers maps and touches two copy buffers of size bytes each (a
// multiple of the huge page size, at most ChunkSize; see BufferSize).
func NewBuffers(size int) (*Buffers, error) {
	if size <= 0 || size%hugePage != 0 || size > ChunkSize {
		return nil, fmt.Errorf("copy buffers of %d bytes: want a multiple of %d up to %d", size, hugePage, ChunkSize)
	}
	// One huge page more, so that the buffers can start on a huge-page
	// boundary: only aligned 2 MiB extents become huge pages.
	mem, err := unix.Mmap(-1, 0, 2*size+hugePage, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("map the copy buffers: %w", os.NewSyscallError("mmap", err))
	}
	// EINVAL: no THP in this kernel; plain pages do.
	if err := unix.Madvise(mem, unix.MADV_HUGEPAGE); err != nil && !errors.Is(err, unix.EINVAL) {
		unix.Munmap(mem)
		return nil, fmt.Errorf("madvise the copy buffers: %w", os.NewSyscallError("madvise", err))
	}
	off := 0
	if a := uintptr(unsafe.Pointer(unsafe.SliceData(mem))) % hugePage; a != 0 {
		off = int(hugePage - a)
	}
	b := &Buffers{mem: mem}
	for i := range b.chunks {
		c := mem[off+i*size : off+(i+1)*size : off+(i+1)*size]
		for j := 0; j < len(c); j += os.Getpagesize() {
			c[j] = 1
		}
		b.chunks[i] = c
	}
	return b, nil
}

// Chunks returns the two buffers, for NewCopier. They are valid until
// Close.
func (b *Buffers) Chunks() [2][]byte { return b.chunks }

// Close unmaps the buffers. Every Copier using them must be closed first.
// Closing twice is a no-op.
func (b *Buffers) Close() error {
	if b == nil || b.mem == nil {
		return nil
	}
	mem := b.mem
	*b = Buffers{}
	if err := unix.Munmap(mem); err != nil {
		return fmt.Errorf("unmap the copy buffers: %w", os.NewSyscallError("munmap", err))
	}
	return nil
}
