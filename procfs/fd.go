package procfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FD is one open file descriptor of the target: the link /proc/PID/fd/N and
// the contents of /proc/PID/fdinfo/N.
type FD struct {
	Num    int
	Target string // readlink of /proc/PID/fd/N: a path, "pipe:[INO]", "anon_inode:[eventfd]", ...
	Pos    int64  // file offset
	Flags  int    // open(2) access mode and status flags, plus O_CLOEXEC if set on the fd
	MntID  int    // mount id, see /proc/PID/mountinfo
	Ino    uint64 // inode number (Linux 5.14+; 0 when absent)

	Cloexec bool // Flags&O_CLOEXEC

	// Extra holds the other fdinfo lines keyed by the text before their
	// first ':' ("eventfd-count", "sigmask", "clockid", "settime flags",
	// "lock", "Pid", ...), values trimmed of surrounding blanks. Lines
	// that start "inotify " or "fanotify " are keyed by that first word.
	// A key that occurs on several lines (epoll "tfd", "inotify",
	// "fanotify", "lock") maps to all its values joined by "\n", in file
	// order. Nil when there are no such lines.
	Extra map[string]string
}

// ReadFDs returns the open file descriptors of pid sorted by number. An fd
// closed between listing the directory and reading it is skipped. Stop the
// target for a consistent result: an fd number may also be reused in between.
func ReadFDs(pid int) ([]FD, error) {
	names, err := readDirNames(procPath(pid, "fd"))
	if err != nil {
		return nil, wrapErr(pid, "list fds", err)
	}
	nums, err := parseIDs(names)
	if err != nil {
		return nil, wrapErr(pid, "list fds", err)
	}
	fds := make([]FD, 0, len(nums))
	skipped := false
	for _, n := range nums {
		fd, err := ReadFD(pid, n)
		if err != nil {
			if vanished(err) {
				skipped = true
				continue
			}
			return nil, err
		}
		fds = append(fds, fd)
	}
	if skipped && processGone(pid) {
		return nil, wrapErr(pid, "list fds", ErrNoProcess)
	}
	return fds, nil
}

// ReadFD reads the link and fdinfo of one file descriptor. If the fd is not
// open the error matches fs.ErrNotExist (or ErrNoProcess if pid is gone).
func ReadFD(pid, num int) (FD, error) {
	name := "fd/" + strconv.Itoa(num)
	target, err := os.Readlink(procPath(pid, name))
	if err != nil {
		return FD{}, wrapErr(pid, "read "+name, err)
	}
	info := "fdinfo/" + strconv.Itoa(num)
	b, err := readFile(pid, info)
	if err != nil {
		return FD{}, err
	}
	fd, err := ParseFDInfo(bytes.NewReader(b))
	if err != nil {
		return FD{}, wrapErr(pid, "read "+info, err)
	}
	fd.Num = num
	fd.Target = target
	return fd, nil
}

// ParseFDInfo parses the contents of /proc/PID/fdinfo/N into the fdinfo
// fields of an FD (Num and Target are left zero). The pos, flags and mnt_id
// lines are required; empty lines are ignored.
func ParseFDInfo(r io.Reader) (FD, error) {
	var fd FD
	var havePos, haveFlags, haveMnt bool
	var p fieldParser
	err := eachLine(r, func(n int, raw []byte) error {
		if len(raw) == 0 {
			return nil
		}
		line := string(raw)
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("line %d: no ':' in %q", n, line)
		}
		if word, after, ok := strings.Cut(line, " "); ok && (word == "inotify" || word == "fanotify") {
			key, val = word, after
		}
		val = strings.TrimSpace(val)
		switch key {
		case "pos":
			fd.Pos = p.int(key, val, 10, 64)
			havePos = true
		case "flags":
			fd.Flags = int(p.uint(key, val, 8, 32))
			haveFlags = true
		case "mnt_id":
			fd.MntID = int(p.int(key, val, 10, 32))
			haveMnt = true
		case "ino":
			fd.Ino = p.uint(key, val, 10, 64)
		default:
			if fd.Extra == nil {
				fd.Extra = make(map[string]string)
			}
			if old, dup := fd.Extra[key]; dup {
				val = old + "\n" + val
			}
			fd.Extra[key] = val
		}
		if p.err != nil {
			return fmt.Errorf("line %d: %w", n, p.err)
		}
		return nil
	})
	if err == nil {
		switch {
		case !havePos:
			err = fmt.Errorf("no pos line")
		case !haveFlags:
			err = fmt.Errorf("no flags line")
		case !haveMnt:
			err = fmt.Errorf("no mnt_id line")
		}
	}
	if err != nil {
		return FD{}, fmt.Errorf("parse fdinfo: %w", err)
	}
	fd.Cloexec = fd.Flags&unix.O_CLOEXEC != 0
	return fd, nil
}
