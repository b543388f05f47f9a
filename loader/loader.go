//go:build linux

package loader

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
)

// ErrNotSupported: this kernel (or architecture) cannot run the tracker (no
// BPF syscall, no tp_btf programs or ring buffers, no kernel BTF, no
// raw_syscalls tracepoints, or an architecture other than x86-64). Pre-copy
// still works without it: the dirty set comes from PAGEMAP_SCAN; only the
// live telemetry is lost.
var ErrNotSupported = errors.New("eBPF write-tracking telemetry not supported")

// syscallTable is SYSCALL_TABLE of bpf/track.h: the entries of
// syscall_classes (Load fails if the sizes disagree).
const syscallTable = 1024

// DefaultRingbufSize is the ring buffer size when Options.RingbufSize is 0:
// 64 MiB drained every 10-20 ms lost no event at ~1 M events/s, where 1 MiB
// dropped 4-13%.
const DefaultRingbufSize = 64 << 20

// Options configure Load.
type Options struct {
	// EmitFaultEvents puts one event per write fault of a tracked process
	// in the ring buffer. Without it write faults are only counted, which
	// is cheaper; address-space changes are always emitted.
	EmitFaultEvents bool
	// RingbufSize is the ring buffer size in bytes: a power of two and a
	// multiple of the page size. 0 means DefaultRingbufSize.
	RingbufSize int
	// Logger receives what Load decided on its own (running without fault
	// tracepoints). Nil discards it.
	Logger *slog.Logger
}

// Kind is what an Event reports (enum event_kind in bpf/track.h).
type Kind = trackEventKind

// Event kinds. See bpf/track.h for what Addr, Len and Arg0..Arg2 hold for
// each.
const (
	KindWriteFaultUser   Kind = trackEventKindEVENT_WRITE_FAULT_USER
	KindWriteFaultKernel Kind = trackEventKindEVENT_WRITE_FAULT_KERNEL
	KindMmap             Kind = trackEventKindEVENT_MMAP
	KindMunmap           Kind = trackEventKindEVENT_MUNMAP
	KindMremap           Kind = trackEventKindEVENT_MREMAP
	KindBrk              Kind = trackEventKindEVENT_BRK
	KindMprotect         Kind = trackEventKindEVENT_MPROTECT
	KindMadvise          Kind = trackEventKindEVENT_MADVISE
	KindMmapRet          Kind = trackEventKindEVENT_MMAP_RET
	KindMremapRet        Kind = trackEventKindEVENT_MREMAP_RET
	KindBrkRet           Kind = trackEventKindEVENT_BRK_RET
)

var kindNames = map[Kind]string{
	KindWriteFaultUser:   "write-fault-user",
	KindWriteFaultKernel: "write-fault-kernel",
	KindMmap:             "mmap",
	KindMunmap:           "munmap",
	KindMremap:           "mremap",
	KindBrk:              "brk",
	KindMprotect:         "mprotect",
	KindMadvise:          "madvise",
	KindMmapRet:          "mmap-ret",
	KindMremapRet:        "mremap-ret",
	KindBrkRet:           "brk-ret",
}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint32(k))
}

// IsAddressSpaceChange reports whether the event is a syscall that changes
// (or may change) the address space: the trigger to re-read /proc/PID/maps.
func (k Kind) IsAddressSpaceChange() bool {
	return k >= KindMmap && k <= KindBrkRet
}

// Event is one ring buffer record: struct event of bpf/track.h, with the
// layout bpf2go generated from it. Ts is CLOCK_MONOTONIC in nanoseconds;
// Tgid and Tid the process and thread; Addr, Len and Arg0..Arg2 depend on
// Kind (see bpf/track.h).
type Event trackEvent

// Result returns the syscall result of a *Ret event (KindMmapRet,
// KindMremapRet, KindBrkRet): the address and 0, or 0 and the errno when
// the call failed.
func (e *Event) Result() (addr uint64, errno syscall.Errno) {
	if r := int64(e.Addr); r < 0 && r >= -4095 {
		return 0, syscall.Errno(-r)
	}
	return e.Addr, 0
}

func (e *Event) String() string {
	return fmt.Sprintf("%s tgid=%d tid=%d addr=%#x len=%#x args=[%#x %#x %#x]",
		e.Kind, e.Tgid, e.Tid, e.Addr, e.Len, e.Arg0, e.Arg1, e.Arg2)
}

// Counters are the tracker's counters summed over all CPUs, for tracked
// processes only, since Load.
type Counters struct {
	Seen              uint64 // write faults and syscall events the programs considered
	Emitted           uint64 // events written to the ring buffer
	Dropped           uint64 // events lost because the ring buffer was full
	WriteFaultsUser   uint64 // write faults from user mode
	WriteFaultsKernel uint64 // write faults the kernel took on user memory (copy_to_user)
	ASChanges         uint64 // mmap, munmap, mremap, brk, mprotect and madvise calls
}

// Tracker is the loaded and attached write-tracking telemetry. See the
// package documentation for its lifecycle.
type Tracker struct {
	objs   objects
	reader *ringbuf.Reader
	faults bool
	rec    ringbuf.Record

	// The programs are attached while some process is tracked: every
	// process on the host pays for the syscall programs on every syscall
	// while they are (see BenchmarkSyscall), so an idle Tracker (a daemon
	// between checkpoints) costs nothing.
	mu      sync.Mutex
	tracked map[int]bool
	links   []link.Link // nil while nothing is tracked
}

// Load loads the BPF collection (without the page-fault programs where
// exceptions:page_fault_* do not exist) and opens the ring buffer. No
// process is tracked, and no program attached, until Add.
//
// A verifier rejection returns an error whose text is the whole verifier
// log. An error wrapping ErrNotSupported means the kernel cannot do this at
// all; one matching os.ErrPermission means missing privileges (CAP_BPF and
// CAP_PERFMON, or CAP_SYS_ADMIN).
func Load(opts Options) (_ *Tracker, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	size := opts.RingbufSize
	if size == 0 {
		size = DefaultRingbufSize
	}
	if size < os.Getpagesize() || size&(size-1) != 0 || size > 1<<30 {
		return nil, fmt.Errorf("ring buffer size %d: must be a power of two between the page size and 1 GiB", size)
	}
	classes, err := syscallClasses()
	if err != nil {
		return nil, err
	}

	if err := probe(); err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones
	// make this a no-op. Without CAP_SYS_RESOURCE it can fail; loading may
	// still succeed, so keep the error for a failed load's message.
	memlockErr := rlimit.RemoveMemlock()

	spec, err := loadSpec()
	if err != nil {
		return nil, err
	}
	spec.Maps[trackMapEvents].MaxEntries = uint32(size)
	if opts.EmitFaultEvents {
		if err := spec.Variables[trackVarEmitFaults].Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("set emit_faults: %w", err)
		}
	}
	if err := spec.Variables[trackVarSyscallClasses].Set(classes); err != nil {
		return nil, fmt.Errorf("set syscall_classes: %w", err)
	}

	// Where loading the fault programs fails as unsupported (cilium/ebpf's
	// answer for a tracepoint missing from the kernel's BTF), they are left
	// out; if the rest fails the same way, so does Load.
	t := &Tracker{faults: true, tracked: map[int]bool{}}
	err = t.load(spec, true)
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, btf.ErrNotFound) {
		log.Info("exceptions:page_fault_* tracepoints unavailable: counting no write faults (reduced telemetry)",
			"err", err)
		t.faults = false
		err = t.load(spec, false)
	}
	if err != nil {
		var ve *ebpf.VerifierError
		switch {
		case errors.As(err, &ve):
			return nil, fmt.Errorf("load write-tracking programs: %w\nwhole verifier log: %+v", err, ve)
		case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, btf.ErrNotFound):
			return nil, fmt.Errorf("load write-tracking programs: %w: %w", ErrNotSupported, err)
		case errors.Is(err, os.ErrPermission) && memlockErr != nil:
			return nil, fmt.Errorf("load write-tracking programs: %w (and raising RLIMIT_MEMLOCK failed: %v)", err, memlockErr)
		}
		return nil, fmt.Errorf("load write-tracking programs: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
		}
	}()

	t.reader, err = ringbuf.NewReader(t.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("open the event ring buffer: %w", err)
	}
	// A deadline in the past makes ReadInto return every record already in
	// the ring, then os.ErrDeadlineExceeded, without blocking.
	t.reader.SetDeadline(time.Unix(0, 1))
	return t, nil
}

// loadSpec is replaced by tests.
var loadSpec = loadTrack

// load loads the maps and programs of spec into t.objs, the fault programs
// only with faults. LoadAndAssign rather than NewCollection: it loads only
// what the struct names, and it does not memory-map .rodata for Variables
// (a mapping that Close could not release; only the garbage collector
// would).
func (t *Tracker) load(spec *ebpf.CollectionSpec, faults bool) error {
	if faults {
		return spec.LoadAndAssign(&t.objs, nil)
	}
	return spec.LoadAndAssign(&struct {
		*trackMaps
		*syscallPrograms
	}{&t.objs.trackMaps, &t.objs.syscallPrograms}, nil)
}

// objects are the loaded maps and programs. Tags name the objects of
// bpf/track.c; the program sets are split so that Load can leave out the
// fault programs.
type objects struct {
	trackMaps
	syscallPrograms
	faultPrograms
}

type syscallPrograms struct {
	SysEnter *ebpf.Program `ebpf:"sys_enter"`
	SysExit  *ebpf.Program `ebpf:"sys_exit"`
}

// faultPrograms are attached only where the exceptions tracepoints exist
// (x86); the syscall programs are required.
type faultPrograms struct {
	PageFaultUser   *ebpf.Program `ebpf:"page_fault_user"`
	PageFaultKernel *ebpf.Program `ebpf:"page_fault_kernel"`
}

type namedProgram struct {
	name string
	prog *ebpf.Program // nil when pruned
}

// programs lists every program in attach order.
func (o *objects) programs() []namedProgram {
	return []namedProgram{
		{trackProgSysEnter, o.SysEnter},
		{trackProgSysExit, o.SysExit},
		{trackProgPageFaultUser, o.PageFaultUser},
		{trackProgPageFaultKernel, o.PageFaultKernel},
	}
}

// close frees every loaded program and map (each is nil or open).
func (o *objects) close() error {
	var errs []error
	for _, p := range o.programs() {
		if p.prog != nil {
			errs = append(errs, p.prog.Close())
		}
	}
	for _, m := range []*ebpf.Map{o.Events, o.Counters, o.Targets} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	*o = objects{}
	return errors.Join(errs...)
}

// probe checks that the kernel has ring buffers. Tracing programs (tp_btf)
// are not probed: cilium/ebpf's probe attaches to a kernel function (fentry),
// refused on kernels that run tp_btf programs fine; loading them tells.
func probe() error {
	switch err := features.HaveMapType(ebpf.RingBuf); {
	case err == nil:
		return nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("probe BPF ring buffer maps: %w: %w", ErrNotSupported, err)
	default:
		return fmt.Errorf("probe BPF ring buffer maps: %w", err)
	}
}

// Add starts tracking process tgid (its threads included), attaching the
// programs if it is the first. Tracking a tracked process again is not an
// error.
func (t *Tracker) Add(tgid int) error {
	if tgid <= 0 || tgid > 1<<22 {
		return fmt.Errorf("track pid %d: invalid pid", tgid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.objs.Targets.Update(uint32(tgid), uint64(0), ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("track pid %d: %w", tgid, err)
	}
	if len(t.tracked) == 0 {
		if err := t.attach(); err != nil {
			t.objs.Targets.Delete(uint32(tgid))
			return fmt.Errorf("track pid %d: %w", tgid, err)
		}
	}
	t.tracked[tgid] = true
	return nil
}

// Remove stops tracking process tgid, detaching the programs if it was the
// last. Removing an untracked process is not an error. Events already in
// the ring buffer are still delivered by Poll.
func (t *Tracker) Remove(tgid int) error {
	if tgid <= 0 || tgid > 1<<22 {
		return fmt.Errorf("untrack pid %d: invalid pid", tgid)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.objs.Targets.Delete(uint32(tgid)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("untrack pid %d: %w", tgid, err)
	}
	if !t.tracked[tgid] {
		return nil
	}
	delete(t.tracked, tgid)
	if len(t.tracked) == 0 {
		return t.detach()
	}
	return nil
}

// attach attaches every loaded program to its raw tracepoint (about 1 ms
// each); on failure none stays attached. Called with mu held.
func (t *Tracker) attach() error {
	for _, p := range t.objs.programs() {
		if p.prog == nil {
			continue // pruned
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: p.prog, AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return errors.Join(fmt.Errorf("attach %s: %w", p.name, err), t.detach())
		}
		t.links = append(t.links, l)
	}
	return nil
}

// detach detaches every attached program. A raw tracepoint link goes at
// once (about 1 ms here): the kernel frees the old probe array after a
// grace period without making the caller wait for it. Called with mu held.
func (t *Tracker) detach() error {
	var errs []error
	for _, l := range t.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	t.links = nil
	return errors.Join(errs...)
}

// StateChanges returns how many calls tgid made, since Add, that change the
// task state crbpf reads by injection (signal handlers, sigaltstack,
// timers, set_tid_address, brk, exec). Compare two readings: equal means
// that state is unchanged in between.
func (t *Tracker) StateChanges(tgid int) (uint64, error) {
	var n uint64
	if err := t.objs.Targets.Lookup(uint32(tgid), &n); err != nil {
		return 0, fmt.Errorf("read state changes of pid %d: %w", tgid, err)
	}
	return n, nil
}

// Counters returns the counters summed over all CPUs.
func (t *Tracker) Counters() (Counters, error) {
	var per []trackCounters
	if err := t.objs.Counters.Lookup(uint32(0), &per); err != nil {
		return Counters{}, fmt.Errorf("read tracker counters: %w", err)
	}
	var c Counters
	for _, p := range per {
		c.Seen += p.Seen
		c.Emitted += p.Emitted
		c.Dropped += p.Dropped
		c.WriteFaultsUser += p.WriteFaultsUser
		c.WriteFaultsKernel += p.WriteFaultsKernel
		c.ASChanges += p.AsChanges
	}
	return c, nil
}

// Poll calls fn for every event in the ring buffer, in the order the events
// were reserved, and returns how many it delivered. It never blocks: the
// programs submit without waking readers, so call it periodically (every
// 10-20 ms keeps a 64 MiB ring from overflowing at ~1 M events/s).
//
// fn runs on the caller's goroutine and must not keep e past its return or
// call Close. Poll is not safe for concurrent use with itself or Close.
func (t *Tracker) Poll(fn func(e Event)) (int, error) {
	n := 0
	for {
		err := t.reader.ReadInto(&t.rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("read the event ring buffer: %w", err)
		}
		var e Event
		if len(t.rec.RawSample) < int(unsafe.Sizeof(e)) {
			return n, fmt.Errorf("read the event ring buffer: short record of %d bytes", len(t.rec.RawSample))
		}
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&e)), unsafe.Sizeof(e)), t.rec.RawSample)
		n++
		fn(e)
	}
}

// FaultTelemetry reports whether write faults are counted (and emitted with
// EmitFaultEvents). It is false where the kernel has no
// exceptions:page_fault_* tracepoints: then only address-space and state
// changes are reported.
func (t *Tracker) FaultTelemetry() bool { return t.faults }

// Close detaches every program, then closes the ring buffer reader and
// frees the maps and programs. It returns the first errors it met, joined.
// The Tracker must not be used afterwards; a second Close returns nil.
func (t *Tracker) Close() error {
	t.mu.Lock()
	errs := []error{t.detach()}
	t.tracked = nil
	t.mu.Unlock()
	if t.reader != nil {
		if err := t.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the event ring buffer reader: %w", err))
		}
		t.reader = nil
	}
	if err := t.objs.close(); err != nil {
		errs = append(errs, fmt.Errorf("free BPF objects: %w", err))
	}
	return errors.Join(errs...)
}
