// Package procfs reads the state of a target process from /proc.
//
// It owns the text and binary formats of the per-process files crbpf needs to
// checkpoint a process: maps, stat, status, auxv, cmdline, comm, personality,
// the cwd and exe links, the task and children lists, fd and fdinfo, timers
// and pagemap. It never writes to /proc, never ptraces, never signals and
// never changes the target; callers that need a consistent view stop the
// target first (see package ptrace), because every file here is produced by
// the kernel piecewise and can change between two reads.
//
// # Layout
//
// Every format has a pure parser, ParseX, that takes the bytes (or an
// io.Reader) and has no side effects, and a ReadX(pid) wrapper that opens the
// file under /proc/PID and calls it. Parsers are deterministic, are covered by
// golden tests on real captures and hand-made edge cases (testdata/, refresh
// with go test -update), and are fuzzed: malformed input yields an error,
// never a panic, and no allocation is sized from a number in the input.
//
// # Errors
//
// Errors are wrapped with the file and pid they concern. When /proc/PID does
// not exist any more, ReadX returns an error matching ErrNoProcess, whatever
// the call that noticed it failed with (ENOENT or ESRCH). An ENOENT or ESRCH
// for a process that still exists is returned as is, wrapped: it means the
// file is not provided by this kernel (/proc/PID/timers needs
// CONFIG_CHECKPOINT_RESTORE, children CONFIG_PROC_CHILDREN) or that the task
// has no address space (a kernel thread or a zombie: auxv fails with ESRCH, the
// exe link with ENOENT). Permission problems keep their fs.ErrPermission.
//
// A ReadX function does not guard against pid reuse: a pid names whichever
// process holds it when the file is opened. A Dir does: it names the process
// it was opened on.
//
// # Lifecycle
//
// The package starts no goroutines. Every ReadX opens and closes its own
// files; ReadPagemapFile reads from an *os.File the caller opened
// (OpenPagemap) and keeps owning and closing. A Dir (OpenDir) is the one
// holder of state: /proc/PID and the files it keeps open to read them again
// cheaply, for a checkpoint that reads the same files in every round and
// while the target is stopped; its Close releases them. All functions and
// Dir methods are safe for concurrent use.
//
// # Known ambiguities in the kernel formats
//
//   - maps: the kernel escapes only '\n' (as the four bytes `\012`) in path
//     names, not the backslash, so a path printed as `\012` may be a newline
//     or those four characters. Mapping.Name is kept exactly as printed. A
//     path that really ends in " (deleted)" is indistinguishable from a
//     deleted file. Use /proc/PID/map_files when the exact file matters.
//   - stat: comm is printed raw (it may contain spaces, ')' and even '\n');
//     it is delimited by the first '(' and the last ')'.
//   - status: Name escapes '\n' as `\n` and '\\' as `\\`; ParseStatus undoes
//     that.
package procfs
