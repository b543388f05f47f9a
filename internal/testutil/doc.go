// Package testutil runs the programs that crbpf's tests checkpoint and the
// crbpf binary itself, and makes sure nothing outlives a test.
//
// What it owns:
//   - Builds: BuildC compiles a C target from testdata with gcc, BuildCrbpf
//     builds ./cmd/crbpf; both once per test binary into one shared build
//     directory (mode 0755, so tests that drop privileges can run the
//     binaries). A package's TestMain removes it with RemoveBuildDir.
//   - Processes: StartTarget / StartCmd start a process with pipes on its
//     stdin, stdout and stderr; Target reads stdout line by line (WaitLine,
//     NextLine, ReadToEOF) and keeps every line for failure messages. A
//     t.Cleanup registered by StartCmd SIGKILLs the process and all its
//     descendants and reaps them; Adopt does the same for a process the test
//     did not start (a restored process after `crbpf restart --detach`).
//   - crbpf: RunCrbpf runs one crbpf command to completion with a per-test
//     state directory (CRBPF_STATE_DIR); StartCrbpf runs one as a Target
//     (`crbpf restart` in the foreground, whose stdout carries the restored
//     process's lines).
//   - Leaks: BecomeSubreaper makes the test binary the reaper of orphaned
//     descendants, so a process that a crbpf command leaves behind becomes
//     the test binary's child; RunCmd fails a test that leaves one, and
//     TakeBaseline and Baseline.Check (for TestMain) fail the run if any
//     child process, a process in ptrace-stop or a new pipe or pidfd is left
//     at the end.
//
// Invariants: every process started here is killed and reaped before its
// test ends; timeouts are safety nets against hangs (tens of seconds), never
// assertions on speed. Helpers call t.Fatal on setup failures and take the
// testing.TB of the test that owns the resource.
//
// Concurrency: the helpers are safe for parallel tests, but RunCmd's check
// for left-behind processes assumes that no other test starts processes at
// the same time; the e2e tests run sequentially.
package testutil
