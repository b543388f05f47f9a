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
	b, err := readPath(procPath(pid, name))
	if err != nil {
		return nil, wrapErr(pid, "read "+name, err)
	}
	return b, nil
}

// readPath reads a /proc file whole with plain open, read and close. The
// checkpoint's freeze reads several: os.ReadFile costs 3-7 times as much
// here (it also tries to register the file with the runtime's poller,
// fstats it for a size /proc does not report, and reads in small steps).
// Errors are *fs.PathError, as from package os.
func readPath(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 4096)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
	}
}
