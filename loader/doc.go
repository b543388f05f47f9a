// Package loader owns crbpf's BPF objects: it loads the write-tracking
// telemetry programs of bpf/track.c (embedded, compiled ahead of time by
// bpf2go), attaches them to their tracepoints, and reads their counters and
// ring buffer. No other package touches BPF objects.
//
// # What the telemetry is for
//
// For the processes it is told to track, the Tracker counts write faults
// (exceptions:page_fault_user / page_fault_kernel, x86 only) and reports
// address-space changes (sys_enter of mmap, munmap, mremap, brk, mprotect and
// madvise; sys_exit of mmap, mremap and brk with the result address). Pre-copy
// uses it for the live dirty rate (when to stop) and as the "address space
// changed, re-read /proc/PID/maps" trigger.
//
// It is never the dirty set. Writes through GUP (process_vm_writev,
// /proc/PID/mem, ptrace pokes) fault nowhere, a write to an already writable
// page does not fault again, and MADV_DONTNEED zaps pages without a fault:
// the dirty set comes from PAGEMAP_SCAN (package dirty), and the maps diff
// stays the ground truth for the address space.
//
// # Kernel requirements
//
// BPF tracepoint programs and ring buffers (5.8+), kernel BTF
// (/sys/kernel/btf/vmlinux) for CO-RE, CONFIG_FTRACE_SYSCALLS, and tracefs:
// a tracepoint is attached by the ID tracefs publishes, so when no tracefs
// is mounted Load mounts one at /sys/kernel/tracing (in the caller's mount
// namespace) and leaves it mounted. Privileges: CAP_BPF and CAP_PERFMON, or
// CAP_SYS_ADMIN, plus CAP_SYS_ADMIN for that mount. Where the
// exceptions:page_fault_* tracepoints are missing (any architecture but x86)
// Load drops the fault programs and FaultTelemetry reports false. Other
// missing pieces make Load fail with an error wrapping ErrNotSupported.
//
// # Lifecycle
//
// Load creates a Tracker that owns everything: the maps, the programs, one
// tracepoint link per program and the ring buffer reader. Nothing is pinned,
// so nothing outlives the process: Close (or the process's exit) detaches
// every program and frees every object. Add and Remove choose the tracked
// processes (by tgid; all threads of a process are tracked); the programs
// return at once for any other process. A tracked process that exits stays in
// the map until Remove; Remove it, since its pid can be reused.
//
// # Concurrency
//
// Add, Remove, Counters and FaultTelemetry are safe for concurrent use.
// Poll must be called from one goroutine at a time (typically a 10-20 ms
// ticker in the pre-copy loop): the programs submit events without waking
// readers, and Poll never blocks. Close must not run concurrently with any
// other method; nothing may be called after it.
package loader
