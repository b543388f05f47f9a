// Command bench measures crbpf's pre-copy checkpoint against the
// full-freeze path on a target that keeps writing memory, and writes the
// results into docs/benchmarks.md.
//
//	go run ./bench [-sizes 256,1024,4096] [-rates 0,16,64,256] [-reps 3] [-out docs/benchmarks.md]
//	go run ./bench -incremental [-sizes 1024] [-hot 16] [-rates 16] [-reps 3] [-out docs/benchmarks.md]
//
// Run it as root from the module root. It builds crbpf (go build) and the
// target testdata/dirtier.c (gcc) into a temporary directory.
//
// # What one repetition does
//
// For each resident size R (MiB) and write rate W (MiB/s) and each
// repetition, it starts a fresh dirtier holding R MiB of patterned memory
// that dirties W MiB/s of distinct pages of its hot set, lets it warm up,
// and measures in turn, on the same running target:
//
//   - a baseline window without crbpf: the target's largest gap between
//     loop iterations (the noise floor of "downtime" on this machine) and
//     its loop throughput;
//   - crbpf checkpoint --precopy 0 (full freeze) and --precopy auto, in an
//     order that alternates between repetitions: the largest gap the target
//     observed during the run (its downtime as it lived it), crbpf's
//     freeze_seconds and total_seconds, rounds and stop reason, and the
//     freeze steps crbpf logs with -v;
//   - crbpf checkpoint --precopy 8 --max-downtime 1ns, which keeps write
//     tracking armed for as many rounds as the stop rules allow: the
//     target's loop throughput and its cost per page written while pre-copy
//     runs, against the same figures in a window just before.
//
// Images go to a directory under /dev/shm and are deleted after each run;
// the target is not killed by crbpf (it runs on) and is ended by the
// benchmark after each repetition. A run refuses to start a case when
// /dev/shm or memory lack space for the target plus its image.
//
// # Incremental and continuous checkpoints (-incremental)
//
// With -incremental it measures, instead, what an incremental image and
// continuous checkpoints cost; -sizes, -rates and -hot then default to
// 1024, 16 and 16 (a 1 GiB target writing a 16 MiB hot set at 16 MiB/s).
// Each repetition starts a fresh target and, after a baseline window:
//
//   - takes a full checkpoint into /dev/shm (the parent), lets the target
//     run -inc-wait (2s), then takes crbpf checkpoint --parent on it and
//     another full one, one right after the other, in an order that
//     alternates between repetitions: for each, the disk space of its
//     pages.crbpf, meta.crbpf and hashes.crbpf, the pages it stored,
//     crbpf's freeze_seconds and total_seconds, and the target's gap around
//     the final stop and largest gap; and their ratios, incremental ÷ full;
//   - starts crbpf daemon (on its own socket and image directory) and
//     runs crbpf checkpoint --every 1s --keep 5 --json through it (-every,
//     -keep) until it has printed -checkpoints (8), then interrupts it
//     (SIGINT): per checkpoint its freeze, total time, pages and bytes
//     stored, kind (full, then "tracked") and merges, and the largest gap
//     the target saw since the previous one; the target's loop throughput
//     and write cost per page from the first checkpoint to the last against
//     a window just before, with the daemon idle.
//
// The report goes to stdout and into its own section of -out (between
// other markers than the pre-copy section, which is left as it is).
//
// # Lifecycle
//
// The benchmark owns every process it starts: targets are ended (stdin
// closed, then SIGKILL) and reaped after each repetition and on every error
// path; crbpf runs under a timeout, are interrupted with SIGINT (crbpf then
// puts the target back) and killed if they do not exit; the daemon of
// -incremental is stopped with SIGTERM (also sent if the benchmark dies)
// and killed if it does not exit. SIGINT or SIGTERM to the benchmark
// cancels the run the same way and removes the image directory. A target
// whose benchmark died sees end of file on stdin and exits; it also exits
// on its own after 30 minutes.
package main
