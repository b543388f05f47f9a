// Package writer writes one checkpoint image directory (see package image
// and docs/image-format.md) so that a crash at any point never leaves a
// directory at the final path that is not a complete image.
//
// # Protocol
//
// Create works in a sibling temporary directory ".<base>.tmp-<random>"
// (mode 0700, same parent, so the final rename stays on one file system)
// holding pages.crbpf. WritePages appends page data at page-aligned offsets
// and returns the PageRuns that describe it. Commit writes meta.crbpf,
// fsyncs both files and the temporary directory, renames it to the final
// path with RENAME_NOREPLACE (an existing path is never replaced), and
// fsyncs the parent. Until that rename nothing exists at the final path;
// after it the image is complete.
//
// A crash before Commit leaves only the temporary directory. Its name
// starts with "." and ends in ".tmp-<random>"; whoever owns the parent
// directory may remove such leftovers when no writer is running.
//
// # Lifecycle and ownership
//
// The Writer owns the temporary directory and the open pages file. Every
// Writer must end with Commit or Abort; the usual pattern is
//
//	w, err := writer.Create(dir)
//	if err != nil { ... }
//	defer w.Abort() // no-op after a successful Commit
//
// Commit closes the files. Abort closes them and removes the temporary
// directory; it is idempotent and does nothing after a successful Commit.
// After a failed WritePages or Commit only Abort is useful: a failed write
// poisons the Writer, so a later Commit cannot publish an image with
// missing pages.
//
// A Writer is not safe for concurrent use: one goroutine drives it.
//
// # Performance
//
// WritePages is on the checkpoint hot path. It works through data in
// blocks of writeBlock bytes: each block is scanned for zero pages and
// checksummed (CRC-32C, hardware accelerated by hash/crc32) while it is in
// the CPU cache, then written with one pwritev. A 64 MiB call is 64
// syscalls, not 16384.
package writer
