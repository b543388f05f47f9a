//go:build ignore

// SPDX-License-Identifier: GPL-2.0-only
/*
 * crbpf write-tracking telemetry for pre-copy.
 *
 * For the processes whose tgid is a key of `targets`, these programs count
 * write faults and report address-space changes (mmap, munmap, mremap, brk,
 * mprotect, madvise and the results of mmap, mremap and brk) into the
 * `events` ring buffer. They do nothing for any other process.
 *
 * Telemetry and hints only: the dirty set comes from PAGEMAP_SCAN. See
 * track.h for the event layout.
 *
 * Ring buffer records are submitted with BPF_RB_NO_WAKEUP: user space polls
 * every 10-20 ms instead of being woken per event (a wakeup per fault costs
 * several times the fault itself).
 *
 * CO-RE: the tracepoint contexts come from vmlinux.h and are relocated at
 * load time. exceptions:page_fault_* exist on x86 only; the loader removes
 * those programs before loading where the tracepoints are absent.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "track.h"

char __license[] SEC("license") = "GPL";

/* Set by the loader before loading (rodata): emit an event per write fault.
 * When zero, write faults are only counted. */
volatile const __u32 emit_faults = 0;

/* Error code bits of an x86 page fault (arch/x86/include/asm/trap_pf.h). */
#define X86_PF_WRITE (1UL << 1)

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

static __always_inline int on_fault(struct trace_event_raw_exceptions *ctx,
				    __u32 kind)
{
	/* vmlinux.h marks its structs preserve_access_index: these field
	 * reads are CO-RE relocated. */
	__u64 error_code = ctx->error_code;
	__u64 address = ctx->address;
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
		emit(c, id, kind, address, 0, error_code, ctx->ip, 0);
	return 0;
}

SEC("tracepoint/exceptions/page_fault_user")
int page_fault_user(struct trace_event_raw_exceptions *ctx)
{
	return on_fault(ctx, EVENT_WRITE_FAULT_USER);
}

SEC("tracepoint/exceptions/page_fault_kernel")
int page_fault_kernel(struct trace_event_raw_exceptions *ctx)
{
	return on_fault(ctx, EVENT_WRITE_FAULT_KERNEL);
}

/* ---- address-space changes ---- */

static __always_inline int on_enter(struct trace_event_raw_sys_enter *ctx,
				    __u32 kind, __u64 addr, __u64 len,
				    __u64 arg0, __u64 arg1, __u64 arg2)
{
	struct counters *c;
	__u64 id;

	id = tracked();
	if (!id)
		return 0;
	c = percpu_counters();
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->seen, 1);
	__sync_fetch_and_add(&c->as_changes, 1);
	emit(c, id, kind, addr, len, arg0, arg1, arg2);
	return 0;
}

static __always_inline int on_exit(struct trace_event_raw_sys_exit *ctx,
				   __u32 kind)
{
	struct counters *c;
	__u64 id;

	id = tracked();
	if (!id)
		return 0;
	c = percpu_counters();
	if (!c)
		return 0;
	__sync_fetch_and_add(&c->seen, 1);
	emit(c, id, kind, ctx->ret, 0, 0, 0, 0);
	return 0;
}

/* Syscall argument i of a sys_enter tracepoint. */
#define ARG(ctx, i) ((__u64)(ctx)->args[i])

SEC("tracepoint/syscalls/sys_enter_mmap")
int sys_enter_mmap(struct trace_event_raw_sys_enter *ctx)
{
	/* mmap(addr, len, prot, flags, fd, off) */
	return on_enter(ctx, EVENT_MMAP, ARG(ctx, 0), ARG(ctx, 1), ARG(ctx, 2),
			ARG(ctx, 3), ARG(ctx, 4));
}

SEC("tracepoint/syscalls/sys_enter_munmap")
int sys_enter_munmap(struct trace_event_raw_sys_enter *ctx)
{
	/* munmap(addr, len) */
	return on_enter(ctx, EVENT_MUNMAP, ARG(ctx, 0), ARG(ctx, 1), 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_mremap")
int sys_enter_mremap(struct trace_event_raw_sys_enter *ctx)
{
	/* mremap(old_addr, old_len, new_len, flags, new_addr) */
	return on_enter(ctx, EVENT_MREMAP, ARG(ctx, 0), ARG(ctx, 1),
			ARG(ctx, 2), ARG(ctx, 3), ARG(ctx, 4));
}

/* ---- task state changes ---- */

static __always_inline int on_state_change(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *n = bpf_map_lookup_elem(&targets, &tgid);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

#define STATE_CHANGE(name)                                              \
	SEC("tracepoint/syscalls/sys_enter_" #name)                     \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)     \
	{                                                               \
		return on_state_change();                               \
	}

STATE_CHANGE(rt_sigaction)
STATE_CHANGE(sigaltstack)
STATE_CHANGE(setitimer)
STATE_CHANGE(alarm)
STATE_CHANGE(timer_create)
STATE_CHANGE(timer_settime)
STATE_CHANGE(timer_delete)
STATE_CHANGE(set_tid_address)
STATE_CHANGE(execve)
STATE_CHANGE(execveat)

SEC("tracepoint/syscalls/sys_enter_brk")
int sys_enter_brk(struct trace_event_raw_sys_enter *ctx)
{
	/* brk(brk): also a state change, crbpf needs the exact break. */
	on_state_change();
	return on_enter(ctx, EVENT_BRK, ARG(ctx, 0), 0, 0, 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_mprotect")
int sys_enter_mprotect(struct trace_event_raw_sys_enter *ctx)
{
	/* mprotect(start, len, prot) */
	return on_enter(ctx, EVENT_MPROTECT, ARG(ctx, 0), ARG(ctx, 1),
			ARG(ctx, 2), 0, 0);
}

SEC("tracepoint/syscalls/sys_enter_madvise")
int sys_enter_madvise(struct trace_event_raw_sys_enter *ctx)
{
	/* madvise(start, len, advice) */
	return on_enter(ctx, EVENT_MADVISE, ARG(ctx, 0), ARG(ctx, 1),
			ARG(ctx, 2), 0, 0);
}

SEC("tracepoint/syscalls/sys_exit_mmap")
int sys_exit_mmap(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, EVENT_MMAP_RET);
}

SEC("tracepoint/syscalls/sys_exit_mremap")
int sys_exit_mremap(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, EVENT_MREMAP_RET);
}

SEC("tracepoint/syscalls/sys_exit_brk")
int sys_exit_brk(struct trace_event_raw_sys_exit *ctx)
{
	return on_exit(ctx, EVENT_BRK_RET);
}
