/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Types shared between bpf/track.c and package loader.
 *
 * The Go mirrors (trackEvent, trackEventKind, trackCounters) are generated
 * from this header's BTF by bpf2go (-type), never written by hand: change a
 * type here, run `go generate ./loader/`, and commit both.
 *
 * What these events are for: telemetry and hints for pre-copy (the live
 * dirty rate, "the address space changed"). They are never the dirty set:
 * writes through GUP (process_vm_writev, /proc/PID/mem, ptrace) and pages
 * zapped by MADV_DONTNEED fault nowhere, so only PAGEMAP_SCAN is complete.
 */
#ifndef CRBPF_TRACK_H
#define CRBPF_TRACK_H

/*
 * What an event reports. The meaning of addr, len and arg0..arg2 depends on
 * the kind:
 *
 *   kind                       addr          len       arg0        arg1   arg2
 *   EVENT_WRITE_FAULT_USER     fault address 0         error_code  ip     0
 *   EVENT_WRITE_FAULT_KERNEL   fault address 0         error_code  ip     0
 *   EVENT_MMAP                 addr hint     len       prot        flags  fd
 *   EVENT_MUNMAP               addr          len       0           0      0
 *   EVENT_MREMAP               old_addr      old_len   new_len     flags  new_addr
 *   EVENT_BRK                  requested brk 0         0           0      0
 *   EVENT_MPROTECT             start         len       prot        0      0
 *   EVENT_MADVISE              start         len       advice      0      0
 *   EVENT_MMAP_RET             return value  0         0           0      0
 *   EVENT_MREMAP_RET           return value  0         0           0      0
 *   EVENT_BRK_RET              return value  0         0           0      0
 *
 * Fault events are user-space write faults (error_code bit 1 set) on
 * x86 only (the exceptions:page_fault_* tracepoints); *_KERNEL is a write
 * fault taken by the kernel on a user address (copy_to_user, e.g. read()
 * into a protected buffer). For the *_RET kinds addr is the syscall's
 * return value: the resulting address, the new break, or a negative errno
 * as two's complement. The *_RET event follows its entry event from the same
 * tid.
 */
enum event_kind {
	EVENT_WRITE_FAULT_USER = 1,
	EVENT_WRITE_FAULT_KERNEL = 2,
	EVENT_MMAP = 3,
	EVENT_MUNMAP = 4,
	EVENT_MREMAP = 5,
	EVENT_BRK = 6,
	EVENT_MPROTECT = 7,
	EVENT_MADVISE = 8,
	EVENT_MMAP_RET = 9,
	EVENT_MREMAP_RET = 10,
	EVENT_BRK_RET = 11,
};

/*
 * One record in the `events` ring buffer. 64 bytes, no implicit padding.
 */
struct event {
	__u64 ts;   /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, ns */
	__u64 addr; /* see enum event_kind */
	__u64 len;
	__u64 arg0;
	__u64 arg1;
	__u64 arg2;
	__u32 tgid; /* process (thread group) id */
	__u32 tid;  /* thread id */
	enum event_kind kind;
	__u32 cpu;  /* CPU the event was recorded on */
};

/*
 * What the sys_enter and sys_exit programs do for one syscall number: the
 * read-only table syscall_classes in track.c, indexed by number, which the
 * loader fills from the architecture's syscall numbers before loading. A
 * zeroed entry (every syscall but the dozen of interest) returns at once.
 */
#define SYSCALL_TABLE 1024

struct syscall_class {
	__u8 enter; /* enum event_kind emitted at entry, 0 for none */
	__u8 nargs; /* syscall arguments the entry event carries (addr, len, arg0..arg2) */
	__u8 exit;  /* enum event_kind emitted at exit with the result, 0 for none */
	__u8 state; /* 1: a task state change (counted in the process's `targets` value) */
};

/*
 * Counters, the single value of the per-CPU array `counters`; user space sums
 * the CPUs. Only tracked tgids (keys of `targets`) are counted.
 */
struct counters {
	__u64 seen;                /* write faults and syscall events considered */
	__u64 emitted;             /* events written to the ring buffer */
	__u64 dropped;             /* events lost: the ring buffer was full */
	__u64 write_faults_user;   /* write faults from user mode */
	__u64 write_faults_kernel; /* write faults taken by the kernel on user memory */
	__u64 as_changes;          /* mmap/munmap/mremap/brk/mprotect/madvise calls */
};

#endif /* CRBPF_TRACK_H */
