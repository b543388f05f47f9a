// Package daemon is crbpf's long-running server: it takes checkpoints and
// restarts processes for clients on a unix socket (the protocol is package
// api), keeps images in memory by crid, and exports Prometheus metrics.
//
// # What it owns
//
//   - The socket (created 0666: anyone may connect; what a client may do is
//     decided per request from SO_PEERCRED) and the ready file.
//   - The in-memory images: a 0700 directory on tmpfs, removed at exit.
//     A memory budget either refuses a checkpoint that does not fit or
//     evicts the oldest images (the answer names them).
//   - One eBPF telemetry instance, attached from start to exit and shared
//     by all checkpoints; checkpoints run one at a time (they share its
//     counters), restarts in parallel.
//   - The restored processes it starts are its children: a goroutine per
//     process reaps it (and reports its exit to a client that waits).
//
// # Authorization
//
// Root (uid 0) may do everything. Another user may checkpoint processes
// whose real and effective uid are its own (and always itself), write
// images only into directories it owns (they are given to it), and
// restart, save or drop only images it made or owns, of processes that
// ran as itself (a restored process gets the ids saved in its image).
//
// # Lifecycle
//
// New, then Run until its context is done. At shutdown Run stops
// accepting, cancels the requests in flight (a checkpoint rolls its target
// back: nothing stays stopped or write-protected), waits for them, and
// removes the socket, the ready file and the in-memory images. Restored
// processes keep running.
package daemon
