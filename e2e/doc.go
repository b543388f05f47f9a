// Package e2e holds crbpf's end-to-end tests: they build the crbpf binary
// and the C and python3 targets in testdata/, checkpoint real processes,
// restart them and check what the targets report about themselves.
//
// Every target verifies its own state (memory patterns and checksums,
// counters, signal state, CPU identity) and prints simple greppable lines,
// so a test fails on any corruption instead of only on a crash. Each target
// has a "selfcheck" mode that TestTargetsSelfCheck runs without crbpf.
//
// The tests need root (CAP_SYS_ADMIN and CAP_SYS_PTRACE): they skip without
// it, except under CI=true, where they fail. TestMain makes the test binary
// a child subreaper and fails the run if any process, ptrace-stopped task,
// pipe or pidfd is left over at the end. Tests run one at a time: they
// assert on PIDs (the original PID is reused when free) and on which
// processes exist.
package e2e
