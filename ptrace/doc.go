// Package ptrace is the only place in crbpf that issues PTRACE_* requests.
//
// The kernel ties a tracee to the thread that attached it, so every request,
// the traced exec and every wait4 for a tracee run on one goroutine that has
// called runtime.LockOSThread and never unlocks it: the Tracer. Callers hand
// work to it with Tracer.Do; functions and methods that must run there say so
// in their doc comment ("Precondition: called on the tracer thread.").
//
// Task wraps one seized thread and offers the operations a checkpointer needs:
// stop and resume, registers and extended state, signal mask and queued
// signals, rseq configuration, memory access, and syscall injection
// (Injector) through a `syscall` instruction already present in the
// tracee, optionally with a Lifeline that returns the tracee to where it
// was should the tracer die between injected calls. ESRCH is reported as ErrTaskGone: the task exited or was killed.
//
// Lifecycle: NewTracer starts the thread; Close stops it after the caller has
// detached from or killed every tracee. A Task does not own the thread; its
// owner detaches it (Task.Detach) on every path, success or error, and must
// put the registers back first when it changed them.
package ptrace
