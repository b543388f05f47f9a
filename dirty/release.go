//go:build linux

package dirty

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// ReleaseChunk is the size of one step of Release. Removing the protection
// of a range rewrites its page table entries; on this machine (a guest
// whose page tables are shadowed by the hypervisor) the running target
// then stalls for all of them at once: closing the userfaultfd of a 1 GiB
// target stopped it for 0.2-0.55 s just after it had been resumed from a
// 5 ms freeze. Steps of 4 MiB with a pause after each kept its longest
// stall at the level of scheduling noise (10-30 ms here), for 1.2-1.6 s of
// release per GiB with crbpf at nice 19; 8 MiB steps stalled it 65-110 ms
// at crbpf's normal priority (docs/benchmarks.md, "Ending write
// tracking"). The target's total stall does not depend on the step (0.8-1.3
// s per GiB there for 64 KiB to 64 MiB steps, paced or not); only how it
// is spread does ("The gaps outside the freeze").
const ReleaseChunk = 4 << 20

// releasePause is the pause after a step that took d: long enough for the
// target to absorb the step before the next one.
func releasePause(d time.Duration) time.Duration {
	return 200*time.Microsecond + d
}

// Release removes the protection from ranges (the ranges registered with
// this WP; holes and parts registered no more are skipped) a chunk at a
// time, pausing between chunks, and then closes the userfaultfd. It stops
// early when the address space is gone. Closing remains the authoritative
// step: whatever a chunk could not unregister, the close does at once.
func (w *WP) Release(ranges []Range) error {
	for _, r := range ranges {
		if !w.releaseRange(r) {
			break
		}
	}
	return w.Close()
}

// releaseRange unregisters r in chunks; it reports false when the target's
// address space is gone or the userfaultfd unusable (nothing more to do).
func (w *WP) releaseRange(r Range) bool {
	start, end := r.Start&^(pageSize-1), (r.End+pageSize-1)&^(pageSize-1)
	for a := start; a < end; a += ReleaseChunk {
		t0 := time.Now()
		err := w.Unregister(a, min(a+ReleaseChunk, end))
		switch {
		case err == nil:
			time.Sleep(releasePause(time.Since(t0)))
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOMEM):
			// A mapping there that cannot be registered (it was
			// replaced), or none: no protection to remove.
		default:
			return false
		}
	}
	return true
}
