// Package restore brings a checkpointed process back from an image, in a new
// process, where it left off.
//
// No restorer blob is loaded into the target: crbpf execs a one-page stub
// (stubELF) under ptrace and reshapes it with injected system calls — its PID
// (clone3 set_tid), its address space (mmap + pread64 from the image's page
// file, which the stub inherits as an fd), the vDSO (arch_prctl
// ARCH_MAP_VDSO_64), the mm fields (PR_SET_MM_MAP), its task state and fd
// table — then sets the saved registers at the exit stop of the last
// injected call, which unmaps crbpf's scratch code, and detaches.
//
// Invariants: a half-restored process never runs user code of the image and
// never outlives a failed or killed restore (PTRACE_O_EXITKILL, and every
// error path kills and reaps it). The restorer is a child subreaper, so the
// restored process is always crbpf's child and can be waited for.
//
// Lifecycle: Run is synchronous and runs its ptrace work on the given
// Tracer; the caller waits for (or abandons, with --detach) the returned PID.
package restore
