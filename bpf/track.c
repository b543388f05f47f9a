//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * crbpf write-tracking telemetry for pre-copy.
 *
 * For the processes whose tgid is a key of `targets`, these programs count
 * write faults, report address-space changes (mmap, munmap, mremap, brk,
 * mprotect, madvise and the results of mmap, mremap and brk) into the
 * `events` ring buffer, and count task state changes in `targets`. For any
 * other process they return at once.
 *
 * Telemetry and hints only: the dirty set comes from PAGEMAP_SCAN. See
 * track.h for the event layout.
 *
 * Ring buffer records are submitted with BPF_RB_NO_WAKEUP: user space polls
 * every 10-20 ms instead of being woken per event (a wakeup per fault costs
 * several times the fault itself).
 *
 * BTF-enabled raw tracepoints (tp_btf): the programs see the tracepoints'
 * own arguments, typed by the kernel's BTF, and read through them directly.
 * Syscalls are seen at raw_syscalls:sys_enter/sys_exit, filtered by number
 * through syscall_classes, rather than at one syscalls:sys_*_NAME event each:
 * detaching a program from such an event waits for an RCU grace period under
 * a global mutex (28-56 ms each on the development VM: 0.58 s for the 21
 * events this needs), while a raw tracepoint link goes at once (about 1 ms).
 * exceptions:page_fault_* exist on x86 only; the loader leaves those
 * programs out where they do not load.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "track.h"

char __license[] SEC("license") = "GPL";

/* Set by the loader before loading (rodata): emit an event per write fault.
 * When zero, write faults are only counted. */
volatile const __u32 emit_faults = 0;

/* Set by the loader before loading (rodata): what sys_enter and sys_exit
 * do for each syscall number of the architecture (track.h). */
volatile const struct syscall_class syscall_classes[SYSCALL_TABLE];

/* Error code bits of an x86 page fault (arch/x86/include/asm/trap_pf.h). */
#define X86_PF_WRITE (1UL << 1)

/* thread_info.status bit of a task inside an ia32 syscall (int $0x80 from a
 * 64-bit process), and the bit that marks an x32 syscall's number
 * (arch/x86/include/asm/thread_info.h, uapi/asm/unistd.h). Their numbers
 * are not the ones syscall_classes is indexed by. */
#define TS_COMPAT 0x0002
#define X32_SYSCALL_BIT 0x40000000UL

/* tgid -> state changes for every tracked process: how many calls it made
 * that change task state crbpf otherwise reads by injecting syscalls
 * (signal handlers, alternate stack, timers, clear_child_tid, brk, exec).
 * crbpf reads that state before the final freeze and reads it again inside
 * the freeze only when this count moved. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} targets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct counters);
} counters SEC(".maps");

/* The loader sets the size (Options.RingbufSize, default 64 MiB). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20);
} events SEC(".maps");

/* Keep struct event (and through it enum event_kind) in BTF for
 * bpf2go -type. */
const struct event *const unused_event __attribute__((unused)) = 0;

/* tracked returns the calling task's pid_tgid when its tgid is tracked, and
 * 0 otherwise (no tracked task has tgid 0). */
static __always_inline __u64 tracked(void)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;

	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	return id;
}

static __always_inline struct counters *percpu_counters(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

static __always_inline void emit(struct counters *c, __u64 id, __u32 kind,
				 __u64 addr, __u64 len, __u64 arg0, __u64 arg1,
				 __u64 arg2)
{
	struct event *e;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&c->dropped, 1);
		return;
	}
	e->ts = bpf_ktime_get_ns();
	e->addr = addr;
	e->len = len;
	e->arg0 = arg0;
	e->arg1 = arg1;
	e->arg2 = arg2;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->kind = kind;
	e->cpu = bpf_get_smp_processor_id();
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	__sync_fetch_and_add(&c->emitted, 1);
}

/* ---- write faults (x86 only) ---- */

static __always_inline int on_fault(__u64 address, struct pt_regs *regs,
				    __u64 error_code, __u32 kind)
{
	struct counters *c;
	__u64 id;

	if (!(error_code & X86_PF_WRITE))
		return 0;
	/* page_fault_kernel also fires for kernel addresses; keep user memory
	 * (the lower canonical half) only. */
	if ((__s64)address < 0)
		return 0;
	id = tracked();
	if (!id)
		return 0;
	c = percpu_counters();
	if (!c)
		return 0;

	__sync_fetch_and_add(&c->seen, 1);
	if (kind == EVENT_WRITE_FAULT_USER)
		__sync_fetch_and_add(&c->write_faults_user, 1);
	else
		__sync_fetch_and_add(&c->write_faults_kernel, 1);
	if (emit_faults)
		emit(c, id, kind, address, 0, error_code, regs->ip, 0);
	return 0;
}

/* TP_PROTO(unsigned long address, struct pt_regs *regs, unsigned long error_code) */
SEC("tp_btf/page_fault_user")
int BPF_PROG(page_fault_user, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	return on_fault(address, regs, error_code, EVENT_WRITE_FAULT_USER);
}

SEC("tp_btf/page_fault_kernel")
int BPF_PROG(page_fault_kernel, unsigned long address, struct pt_regs *regs,
	     unsigned long error_code)
{
	return on_fault(address, regs, error_code, EVENT_WRITE_FAULT_KERNEL);
}

/* ---- syscalls: address-space and task state changes ---- */

/* class_of returns the table entry of syscall nr, or 0 for a number outside
 * the table (including -1, no syscall). Every process on the host pays this
 * on every syscall while the programs are attached: keep it a bounds check
 * and one load. */
static __always_inline const volatile struct syscall_class *class_of(long nr)
{
	if (nr < 0 || nr >= SYSCALL_TABLE)
		return 0;
	return &syscall_classes[nr];
}

/* foreign_abi reports whether the current syscall uses numbers other than
 * the table's: an ia32 syscall of a 64-bit process or an x32 syscall. */
static __always_inline bool foreign_abi(long nr)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (nr >= 0 && (nr & X32_SYSCALL_BIT))
		return true;
	if (!bpf_core_field_exists(task->thread_info.status))
		return false;
	return task->thread_info.status & TS_COMPAT;
}

/* changes returns the tracked process's state-change count, or 0 when the
 * calling process is not tracked. */
static __always_inline __u64 *changes(__u64 id)
{
	__u32 tgid = id >> 32;

	return bpf_map_lookup_elem(&targets, &tgid);
}

/* TP_PROTO(struct pt_regs *regs, long id) */
SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long nr)
{
	const volatile struct syscall_class *cl = class_of(nr);
	__u64 id, *n, a[5] = {};
	struct counters *c;
	__u32 kind;

	if (!cl) {
		/* An x32 syscall: its number is outside the table. */
		if (nr < 0 || !(nr & X32_SYSCALL_BIT))
			return 0;
	} else if (!cl->enter && !cl->state) {
		return 0;
	}
	id = bpf_get_current_pid_tgid();
	n = changes(id);
	if (!n)
		return 0;
	if (!cl || foreign_abi(nr)) {
		/* Its number means another call in the table (if any): count a
		 * state change, which only makes crbpf read the state again. */
		__sync_fetch_and_add(n, 1);
		return 0;
	}
	if (cl->state)
		__sync_fetch_and_add(n, 1);
	kind = cl->enter;
	if (!kind)
		return 0;
	c = percpu_counters();
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->seen, 1);
	__sync_fetch_and_add(&c->as_changes, 1);
	/* The x86-64 syscall argument registers. */
	switch (cl->nargs) {
	default:
	case 5:
		a[4] = regs->r8;
	case 4:
		a[3] = regs->r10;
	case 3:
		a[2] = regs->dx;
	case 2:
		a[1] = regs->si;
	case 1:
		a[0] = regs->di;
	case 0:
		break;
	}
	emit(c, id, kind, a[0], a[1], a[2], a[3], a[4]);
	return 0;
}

/* TP_PROTO(struct pt_regs *regs, long ret) */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	const volatile struct syscall_class *cl = class_of(regs->orig_ax);
	struct counters *c;
	__u64 id;
	__u32 kind;

	if (!cl)
		return 0;
	kind = cl->exit;
	if (!kind)
		return 0;
	id = tracked();
	if (!id || foreign_abi(regs->orig_ax))
		return 0;
	c = percpu_counters();
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->seen, 1);
	emit(c, id, kind, ret, 0, 0, 0, 0);
	return 0;
}
