// Package checkpoint takes a full-freeze checkpoint of one process: it checks
// that crbpf can save everything the process uses, seizes and stops it,
// collects its registers, kernel state and memory, writes an image with the
// writer package, and resumes the process unchanged (or kills it once the
// image is complete, when asked).
//
// Invariant: once the target is seized, every return path puts its
// registers, signal mask and address space back (the scratch page injected
// to read state is unmapped) and detaches, whatever failed; cleanup errors
// are joined to the returned error. The target's safety beats the
// checkpoint. State that crbpf cannot save is refused before the target is
// touched, with an *UnsupportedError naming what is missing.
//
// Lifecycle: Run is synchronous; the caller owns the ptrace.Tracer and closes
// it after Run returns. Cancelling the context aborts the checkpoint at the
// next step and rolls the target back.
package checkpoint
