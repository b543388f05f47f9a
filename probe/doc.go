// Package probe finds out which kernel features crbpf can use on this
// machine, for `crbpf check` and for commands that want to fail early with a
// clear reason.
//
// All runs one probe per feature and returns a Result for each, in a fixed
// order, with a stable Name, the commands that need the feature (NeededBy),
// whether they cannot work without it (Required) or run degraded (Detail
// then says how), a Status (OK, Missing, Unknown) and a one-line Detail with
// what the kernel answered, errno values included.
//
// # Probes are real calls, not version checks
//
//   - ptrace: CAP_SYS_PTRACE in CapEff and kernel.yama.ptrace_scope (absent
//     or 0-2 is fine, 3 blocks everyone).
//   - restore-caps: CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE in CapEff; the
//     Detail also says when CAP_SYS_RESOURCE is missing (some rlimits and
//     single-field PR_SET_MM_* values are then not restored).
//   - clone3-set-tid: clone3 with set_tid = [own pid]. The pid is taken (by
//     the caller), so EEXIST means supported and permitted; EPERM missing
//     privilege; EINVAL or ENOSYS unsupported.
//   - pr-set-mm-map: prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE), which only
//     writes sizeof(struct prctl_mm_map) (104) to the caller's buffer.
//   - arch-map-vdso: arch_prctl(ARCH_MAP_VDSO_64, start of own [vdso]); the
//     kernel refuses with EEXIST while any vDSO is mapped, EINVAL without
//     CONFIG_CHECKPOINT_RESTORE.
//   - uffd-wp-async: userfaultfd(O_CLOEXEC|O_NONBLOCK|UFFD_USER_MODE_ONLY)
//     and UFFDIO_API asking for WP_ASYNC|WP_UNPOPULATED.
//   - pagemap-scan: PAGEMAP_SCAN on /proc/self/pagemap over a fresh mapping
//     of which one page was touched, asking for PAGE_IS_PRESENT.
//   - btf: /sys/kernel/btf/vmlinux exists and starts with the BTF magic.
//   - bpf-tracepoint: loads and closes a two-instruction tp_btf program
//     for raw_syscalls:sys_enter, without attaching it. This is the one
//     place outside package loader that creates a BPF object, and it does
//     not outlive the call.
//   - tracepoint-page-fault, tracepoint-mm-syscalls: the tracepoints'
//     btf_trace_NAME typedefs in the kernel's BTF, which is what a tp_btf
//     program attaches by (page_fault_user/kernel; sys_enter/sys_exit).
//     No tracefs is needed.
//   - soft-dirty (informational, NeededBy empty): bit 55 of the pagemap
//     entry of a freshly written page of a new mapping, which is set exactly
//     when the kernel tracks soft-dirty. /proc/self/clear_refs is not
//     written: it "succeeds" without CONFIG_MEM_SOFT_DIRTY too, and would
//     write-protect all of crbpf's memory.
//
// Where a kernel config is available (/proc/config.gz or
// /boot/config-RELEASE), some Details quote the relevant option; it is never
// the basis of a Status.
//
// # Invariants: no side effects
//
// Every probe acts on the calling process only and puts it back as it was:
// no other process is signalled, traced or read; no child process, fd,
// mapping, BPF object or mount is left behind (the package's tests check
// the fds and child processes after All). In particular:
//
//   - clone3 is made on a goroutine that locks its OS thread, blocks all
//     signals on it for the call and never unlocks it (the runtime then
//     discards the thread). It is not made if the caller's PID namespace for
//     children differs from its own, where the pid might be free. Should the
//     kernel ever create a child anyway, the child calls exit_group from a
//     nosplit function before any other Go code runs, and the probe reaps
//     it and reports Unknown.
//   - ARCH_MAP_VDSO_64 is called only after /proc/self/maps showed a [vdso]:
//     the kernel checks for an existing vDSO before mapping anything, so the
//     call cannot map or move memory. Without a [vdso] it is not made.
//   - The userfaultfd registers no range, so no memory is ever
//     write-protected; it is closed before the probe returns.
//   - PAGEMAP_SCAN is passed no write-protect flag, so it only reads page
//     tables; its scratch mapping is unmapped.
//
// # Lifecycle and concurrency
//
// The package holds no state of its own (cilium/ebpf caches its conclusive
// feature answers for the life of the process) and starts no goroutine that
// outlives a call. All is safe for concurrent use; it takes a few
// milliseconds. A probe that has not started when the context is done is
// reported as Unknown; a running one is not interrupted.
//
// The package never prints: the caller (cmd/crbpf) presents the Results.
package probe
