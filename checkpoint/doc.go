// Package checkpoint takes a checkpoint of one process: it checks that crbpf
// can save everything the process uses, copies its memory while it runs
// (pre-copy, with userfaultfd write tracking) or while it is stopped, stops
// it for the final copy and its registers and kernel state, writes an image
// with the writer package, and resumes the process unchanged (or kills it
// once the image is complete, when asked). With Options.Parent the image is
// incremental: pages equal to the parent chain's are inherited, found by
// hash comparison, or from the write tracking the parent's checkpoint kept
// armed (Options.Tracking).
//
// Invariant: once the target is seized, every return path puts its
// registers, signal mask, stack and address space back (what injected
// calls used as scratch is restored or unmapped) and detaches, whatever
// failed; if crbpf dies instead, the target returns by its ptrace.Lifeline
// where it has one. Cleanup errors
// are joined to the returned error. The target's safety beats the
// checkpoint. State that crbpf cannot save is refused before the target is
// touched, with an *UnsupportedError naming what is missing.
//
// Lifecycle: Run is synchronous; the caller owns the ptrace.Tracer and closes
// it after Run returns. A Tracking passed in Options belongs to the caller,
// who closes it (removing the protection) when no further checkpoint will
// use it; Run replaces or forgets what it holds as needed. Cancelling the context aborts the checkpoint at the
// next step and rolls the target back.
package checkpoint
