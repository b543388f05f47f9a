package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ErrNoProcess is matched (errors.Is) by every error a ReadX function returns
// when the target process does not exist, or no longer does.
var ErrNoProcess = errors.New("no such process")

// root is the procfs mount point.
const root = "/proc"

// procPath returns /proc/PID/name.
func procPath(pid int, name string) string {
	return root + "/" + strconv.Itoa(pid) + "/" + name
}

// processGone reports whether /proc/PID has disappeared.
func processGone(pid int) bool {
	_, err := os.Lstat(root + "/" + strconv.Itoa(pid))
	return errors.Is(err, fs.ErrNotExist)
}

// wrapErr gives err the context "what of pid PID" and maps it to
// ErrNoProcess when it was caused by the process having gone away.
func wrapErr(pid int, what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNoProcess) {
		return fmt.Errorf("%s of pid %d: %w", what, pid, ErrNoProcess)
	}
	if (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)) && processGone(pid) {
		return fmt.Errorf("%s of pid %d: %w", what, pid, ErrNoProcess)
	}
	return fmt.Errorf("%s of pid %d: %w", what, pid, err)
}

// vanished reports whether err says a per-task or per-fd entry disappeared
// while the process was being read (so the entry should be skipped).
func vanished(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// readFile reads /proc/PID/name whole.
func readFile(pid int, name string) ([]byte, error) {
	b, err := os.ReadFile(procPath(pid, name))
	if err != nil {
		return nil, wrapErr(pid, "read "+name, err)
	}
	return b, nil
}
