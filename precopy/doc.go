// Package precopy copies a process's memory into an image while the process
// runs, in rounds, so that the final freeze copies only what is still dirty.
//
// A Copier owns the page bookkeeping of one checkpoint: which pages it copied
// into the writer, at which offset of the image's page file, in order. Later
// copies of a page supersede earlier ones, and a page found zero (or no
// longer private) supersedes its earlier copy with "no data" (zero, or the
// file's content). Runs builds the final page runs of each mapping after
// the target has been resumed, so that no per-page work happens while it is
// frozen.
//
// Which pages were written between rounds comes from a Tracker: a small
// interface that package dirty implements with userfaultfd async
// write-protect and PAGEMAP_SCAN. The dirty set is what the Tracker
// reports; eBPF fault counts are only used to estimate the dirty rate.
//
// Invariants: a mapping's pages are copied whole (as selected by pagemap)
// when it is first seen or when the Tracker says it is not tracked, and
// after that exactly the ranges the Tracker reports, which it has already
// write-protected again, so a write racing with the copy is reported by the
// next scan. Everything runs on the caller's goroutine except the writes
// to the image, which overlap with the next read.
//
// Lifecycle: NewCopier; Track and Round while the target runs; Final while it
// is frozen; Runs once it runs again; Close. The Copier never closes the
// Tracker or the writer.
package precopy
