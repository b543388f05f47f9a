// Package loader owns crbpf's BPF objects: it loads the write-tracking
// telemetry programs of bpf/track.c (embedded, compiled ahead of time by
// bpf2go), attaches them to their tracepoints, and reads their counters and
// ring buffer. No other package touches BPF objects.
//
// # What the telemetry is for
//
// For the processes it is told to track, the Tracker counts write faults
// (exceptions:page_fault_user / page_fault_kernel, x86 only), reports
// address-space changes (the entry of mmap, munmap, mremap, brk, mprotect and
// madvise; the exit of mmap, mremap and brk with the result address) and
// counts task state changes (StateChanges: signal handlers, the alternate
// stack, timers, clear_child_tid, brk, exec). Pre-copy uses it for the live
// dirty rate (when to stop), as the "address space changed, re-read
// /proc/PID/maps" trigger, and to skip re-reading task state in the freeze.
//
// All programs are BTF-enabled raw tracepoints (tp_btf). The syscalls are
// seen at raw_syscalls:sys_enter/sys_exit and picked by number from a table
// the loader fills (syscall_classes, x86-64 numbers), not at one
// syscalls:sys_*_NAME event each: detaching from such an event waits for an
// RCU grace period under a global mutex, 28-56 ms each on the development
// VM, which made every crbpf checkpoint's exit 0.58 s longer; a raw
// tracepoint link goes in about 1 ms. The price: every process on the host
// runs the two syscall programs on every syscall while a process is tracked
// (a bounds check and a table load before returning, for all but the
// tracked processes' dozen calls of interest); see BenchmarkSyscall. Cheap
// detaching is what lets a Tracker attach its programs only then.
//
// It is never the dirty set. Writes through GUP (process_vm_writev,
// /proc/PID/mem, ptrace pokes) fault nowhere, a write to an already writable
// page does not fault again, and MADV_DONTNEED zaps pages without a fault:
// the dirty set comes from PAGEMAP_SCAN (package dirty), and the maps diff
// stays the ground truth for the address space.
//
// # Kernel requirements
//
// tp_btf programs and ring buffers (5.8+), kernel BTF
// (/sys/kernel/btf/vmlinux), by which tp_btf programs attach and their
// register reads are relocated, and x86-64 (the syscall numbers and argument
// registers). No tracefs. Privileges: CAP_BPF and CAP_PERFMON, or
// CAP_SYS_ADMIN. Where the exceptions:page_fault_* tracepoints are missing
// Load drops the fault programs and FaultTelemetry reports false. Other
// missing pieces make Load fail with an error wrapping ErrNotSupported.
//
// # Lifecycle
//
// Load creates a Tracker that owns everything: the maps, the programs, the
// ring buffer reader and, while any process is tracked, one raw tracepoint
// link per program. Nothing is pinned, so nothing outlives the process: Close
// (or the process's exit) detaches every program and frees every object. Add
// and Remove choose the tracked processes (by tgid; all threads of a process
// are tracked): the first Add attaches the programs, the Remove of the last
// detaches them (about 1 ms per program each way), so that a loaded Tracker
// tracking nothing (a daemon between checkpoints) costs the host nothing.
// The programs return at once for any process not tracked. A tracked
// process that exits stays tracked until Remove; Remove it, since its pid
// can be reused.
//
// # Concurrency
//
// Add, Remove, Counters and FaultTelemetry are safe for concurrent use.
// Poll must be called from one goroutine at a time (typically a 10-20 ms
// ticker in the pre-copy loop): the programs submit events without waking
// readers, and Poll never blocks. Close must not run concurrently with any
// other method; nothing may be called after it.
package loader
