// Package dirty tracks which pages of a target process are written, for
// pre-copy checkpointing: userfaultfd asynchronous write-protect arms the
// memory, and the PAGEMAP_SCAN ioctl of /proc/PID/pagemap returns the written
// ranges and protects them again in the same call. It is the only place in
// crbpf that issues UFFDIO_* and PAGEMAP_SCAN ioctls. Linux 6.7 or later is
// needed (UFFD_FEATURE_WP_ASYNC, PAGEMAP_SCAN), with CONFIG_USERFAULTFD and
// CONFIG_PTE_MARKER_UFFD_WP, on an architecture with uffd-wp (x86-64, arm64).
//
// # What it owns
//
// WP owns one userfaultfd. The fd is created inside the target (by syscall
// injection, package ptrace) and copied out with pidfd_getfd; its ioctls then
// act on the target's address space, whoever calls them. NewWP enables
// UFFD_FEATURE_WP_ASYNC (which implies WP_UNPOPULATED): write faults on
// protected pages are resolved by the kernel itself, no handler thread runs
// and the target never waits for crbpf. Register and Protect arm mappings.
//
// Scanner owns an open /proc/PID/pagemap. ScanWritten reports and re-protects
// in one PAGEMAP_SCAN (PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC, category
// and return mask PAGE_IS_WRITTEN), looping on walk_end over the range.
// PeekWritten reports the same without protecting (no PM_SCAN_WP_MATCHING):
// for the last scan of a tracking that ends, whose pages the release would
// only unprotect again.
//
// # Invariants
//
//   - The dirty set is what PAGEMAP_SCAN reports. Page fault events (eBPF)
//     are hints; they miss writes done by the kernel and through GUP.
//   - A page of a registered range not reported by a scan has not been
//     written since the last Protect or ScanWritten that covered it. This holds for
//     user stores, kernel copies (read(2) into the buffer), GUP writes
//     (process_vm_writev, /proc/PID/mem, ptrace pokes) and MADV_DONTNEED or
//     reclaimed MADV_FREE of anonymous memory (the page reads back zero),
//     including a whole page table or THP dropped at once.
//   - Every page ScanWritten reports was write-protected again by the same
//     call, page by page, before the call returns: a write that lands after
//     a page was reported is reported by the next scan. Copy the reported
//     ranges after the scan, never before.
//   - Ranges returned together with an error are valid and must be treated
//     as dirty: the kernel re-protected them before it failed.
//   - Granularity is the base page (4 KiB), THP included: Protect keeps a
//     huge PMD huge, and the first write splits it and unprotects one page.
//   - A registered range never protected reads as written in full, populated
//     or not; Protect also protects never-populated pages (markers), and
//     reading those does not count as a write.
//   - A mapping in the scanned range that is not registered (created by
//     mmap, a moving mremap or a brk extension after arming) fails the scan
//     with *NotRegisteredError naming it. A scan without
//     PM_SCAN_CHECK_WPASYNC would skip it silently, so none is issued.
//     Holes (no mapping) are skipped: unmapping is learned from
//     /proc/PID/maps, not from here.
//
// # What it cannot see
//
//   - Pages pinned long-term (io_uring fixed buffers, O_DIRECT in flight,
//     RDMA) written by a device without touching the page tables.
//   - Shared memory (MAP_SHARED, shmem) written through another process's
//     mapping or with write(2) to the file: only this address space's page
//     tables are tracked.
//   - MADV_DONTNEED on a MAP_PRIVATE file mapping of a page still protected:
//     the page falls back to the file's content but keeps its uffd-wp marker
//     and is not reported (TestPrivateFileDontneed). The caller must treat
//     such madvise calls (seen by the syscall tracepoints) as dirtying.
//   - On kernels that skip page-table holes of uffd-wp VMAs instead of
//     reporting them as written (fixed by a fs/proc/task_mmu.c patch posted
//     for stable in July 2026; the 6.18.44 kernel of the project VMs behaves
//     as fixed), a protected THP or page table dropped whole by
//     MADV_DONTNEED is not reported. TestMadvDontneed and TestTHP fail there.
//
// # Lifecycle
//
// NewWP takes ownership of the fd, on error too. WP.Close closes it; once no
// process holds the userfaultfd any more (the target closes its injected
// copy right after pidfd_getfd) the kernel unregisters every range and
// removes every protection before close(2) returns, so a crashed or killed
// crbpf leaves the target running normally. OpenScanner opens the pagemap
// file, Scanner.Close closes it. Both are bound to the address space the
// target had when they were created: after it exits or calls execve, scans
// and UFFDIO_WRITEPROTECT fail with ErrTargetGone (UFFDIO_REGISTER with
// ENOMEM, as for an unmapped range), and tracking must start over.
//
// WP and Scanner are safe for concurrent use; scans of one Scanner are
// serialised (they share a result buffer). The package starts no goroutine
// and never prints.
//
// # Costs
//
// Measured with bench_test.go on a project VM (2 vCPUs, Linux 6.18, shared
// with other jobs) whose page faults and page-table updates were slow that
// day (a plain C loop took 21–24 µs per fresh-page fault): per GiB,
// ScanWritten took 0.28–0.32 ms with nothing dirty and 35–74 ms with every
// page dirty; Protect 32–80 ms populated, 2–3 ms never touched (markers in
// new page tables); the first write to a protected page cost a fault like any
// other (28–39 µs there, against 17–45 ns for a writable page). Re-measure
// before quoting: DESIGN.md has figures from a faster host.
package dirty
