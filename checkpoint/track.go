package checkpoint

import (
	"errors"
	"fmt"
	"os"

	"github.com/crbpf/crbpf/dirty"
	"github.com/crbpf/crbpf/precopy"
	"golang.org/x/sys/unix"
)

// uffdTracker implements precopy.Tracker with userfaultfd async
// write-protect (armed in the target's mm) and PAGEMAP_SCAN.
type uffdTracker struct {
	wp      *dirty.WP
	scanner               // the tracer thread's
	side    scanner       // the final freeze's helper's (Side)
	tracked []dirty.Range // registered ranges, for Close
}

// scanner reports written pages through a pagemap file of its own: one
// per thread that scans.
type scanner struct {
	scan *dirty.Scanner
	buf  []dirty.Range
}

// armTracking creates a userfaultfd inside the stopped target (one
// injected call), copies it into crbpf with pidfd_getfd and closes the
// target's copy (a second injected call), so the target's fd table is
// unchanged. crbpf closing its copy, or dying, removes all protection.
// Precondition: called on the tracer thread with s stopped.
func armTracking(s *stopped) (*uffdTracker, error) {
	inj, err := s.injector()
	if err != nil {
		return nil, err
	}
	tfd, err := inj.Call("userfaultfd", unix.SYS_USERFAULTFD, dirty.UserfaultfdFlags)
	if err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("userfaultfd in pid %d: %w", s.pid, dirty.ErrNotSupported)
		}
		return nil, err
	}
	// The target's copy must go whatever happens: the task is pointed at
	// close(tfd) before crbpf does anything else, so that were crbpf to
	// die from here on, the task, left alone, closes it itself before its
	// lifeline returns it to where it was (TestLifelinePrepared). A SIGKILL
	// of crbpf between the two injected calls used to leave the target
	// holding the userfaultfd (TestPrecopyKilledMidRound/traced, once in
	// six CI runs). Left open: the two ptrace calls between the first
	// call's return and this one.
	if err := inj.Prepare(unix.SYS_CLOSE, tfd); err != nil {
		return nil, fmt.Errorf("close target's userfaultfd: %w", err)
	}
	pidfd, err := unix.PidfdOpen(s.pid, 0)
	fd := -1
	if err != nil {
		err = fmt.Errorf("pidfd_open %d: %w", s.pid, os.NewSyscallError("pidfd_open", err))
	} else {
		fd, err = unix.PidfdGetfd(pidfd, int(tfd), 0)
		unix.Close(pidfd)
		if err != nil {
			fd = -1
			err = fmt.Errorf("pidfd_getfd of pid %d fd %d: %w", s.pid, tfd, os.NewSyscallError("pidfd_getfd", err))
		}
	}
	if _, cerr := inj.RunCall("close target's userfaultfd"); cerr != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, errors.Join(err, cerr)
	}
	if err != nil {
		return nil, err
	}
	wp, err := dirty.NewWP(fd) // owns fd, closes it on error
	if err != nil {
		return nil, err
	}
	scan, err := dirty.OpenScanner(s.pid)
	if err != nil {
		wp.Close()
		return nil, err
	}
	side, err := dirty.OpenScanner(s.pid)
	if err != nil {
		scan.Close()
		wp.Close()
		return nil, err
	}
	return &uffdTracker{wp: wp, scanner: scanner{scan: scan}, side: scanner{scan: side}}, nil
}

func (t *uffdTracker) Track(start, end uint64) error {
	if err := t.wp.Register(start, end); err != nil {
		return err
	}
	if n := len(t.tracked); n > 0 && t.tracked[n-1].End == start {
		t.tracked[n-1].End = end // the next chunk of a mapping
	} else {
		t.tracked = append(t.tracked, dirty.Range{Start: start, End: end})
	}
	return t.wp.Protect(start, end)
}

// Side is the Scanner of the final freeze's helper thread.
func (t *uffdTracker) Side() precopy.Scanner { return &t.side }

func (t *scanner) Written(start, end uint64, buf []precopy.Range) ([]precopy.Range, error) {
	return t.written(t.scan.ScanWritten, start, end, buf)
}

func (t *scanner) Peek(start, end uint64, buf []precopy.Range) ([]precopy.Range, error) {
	return t.written(t.scan.PeekWritten, start, end, buf)
}

func (t *scanner) written(scan func(start, end uint64, buf []dirty.Range) ([]dirty.Range, error),
	start, end uint64, buf []precopy.Range) ([]precopy.Range, error) {
	got, err := scan(start, end, t.buf)
	t.buf = got
	buf = buf[:0]
	for _, r := range got {
		buf = append(buf, precopy.Range{Start: r.Start, End: r.End})
	}
	var nr *dirty.NotRegisteredError
	if errors.As(err, &nr) {
		return buf, &precopy.UntrackedError{Start: nr.Start, End: nr.End}
	}
	return buf, err
}

// Close removes all protection from the target, paced so that the target,
// running, is not stalled by it (see dirty.ReleaseChunk): 1-1.6 s per GiB
// tracked on this machine. Closing twice is a no-op.
func (t *uffdTracker) Close() error {
	if t == nil {
		return nil
	}
	return errors.Join(t.scan.Close(), t.side.scan.Close(), t.wp.Release(t.tracked))
}

// trackedBytes is the size of the ranges Close releases.
func (t *uffdTracker) trackedBytes() uint64 {
	var n uint64
	for _, r := range t.tracked {
		n += r.End - r.Start
	}
	return n
}

// Discard closes the userfaultfd at once: for a target that is killed.
func (t *uffdTracker) Discard() error {
	if t == nil {
		return nil
	}
	return errors.Join(t.scan.Close(), t.side.scan.Close(), t.wp.Close())
}
