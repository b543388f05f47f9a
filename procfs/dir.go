package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// maxHeld bounds how many files a Dir keeps open (fdinfo files are held per
// fd); past it, files are opened for each read.
const maxHeld = 64

// Dir is one process's /proc directory, opened once, for reading the same
// files of that process again and again, as a checkpoint does: in every
// pre-copy round and, most of all, while the process is stopped. Files are
// opened relative to the directory (no path walk from /proc); those whose
// contents the kernel looks up afresh at every read (status, comm,
// personality, limits, fdinfo/N) are kept open and read with pread from
// offset 0, which makes the kernel show them again. All reads go through
// one buffer that the Dir keeps, so that reading again touches no new
// memory (a page's first touch costs 17 µs on this VM; a 4 KiB buffer per
// read cost a fault each).
//
// Files bound to the address space they were opened on (maps, auxv) are
// opened again at every read: a descriptor kept across an execve would
// show the old one.
//
// A Dir names the process it was opened on, not the number: once that
// process is gone every read fails with ErrNoProcess, even if the pid has
// been reused. Its methods are safe for concurrent use (reads are
// serialized); Close releases it.
type Dir struct {
	pid int
	dir int // /proc/PID

	mu    sync.Mutex
	fdDir int            // /proc/PID/fd, -1 until first listed
	held  map[string]int // name under /proc/PID -> descriptor
	buf   []byte         // every read's, grown to the largest file read

	// The last maps and limits read, raw and parsed: most reads of a
	// checkpoint find them as they were, and parsing them again cost
	// about as much as the kernel's writing them (maps of 25 lines: 24 µs
	// to read, 27 µs to parse; limits 11 and 20 µs).
	maps   cached[[]Mapping]
	limits cached[[]Limit]
}

// cached is the last contents of a file and what parsing them returned.
type cached[T any] struct {
	raw    []byte
	parsed T
	ok     bool
}

// parse returns what parse returns for b, from the cache when b is what it
// was last time.
func (c *cached[T]) parse(b []byte, parse func([]byte) (T, error)) (T, error) {
	if c.ok && bytes.Equal(b, c.raw) {
		return c.parsed, nil
	}
	v, err := parse(b)
	if err != nil {
		c.ok = false
		return v, err
	}
	c.raw, c.parsed, c.ok = append(c.raw[:0], b...), v, true
	return v, nil
}

// OpenDir opens /proc/PID.
func OpenDir(pid int) (*Dir, error) {
	path := root + "/" + strconv.Itoa(pid)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			err = ErrNoProcess
		}
		return nil, wrapErr(pid, "open /proc directory", err)
	}
	return &Dir{pid: pid, dir: fd, fdDir: -1, held: map[string]int{}, buf: make([]byte, 4096)}, nil
}

// PID returns the process id the Dir was opened on.
func (d *Dir) PID() int { return d.pid }

// Close closes every descriptor the Dir holds. Safe to call twice.
func (d *Dir) Close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dir < 0 {
		return nil
	}
	var errs []error
	for name, fd := range d.held {
		errs = append(errs, unix.Close(fd))
		delete(d.held, name)
	}
	if d.fdDir >= 0 {
		errs = append(errs, unix.Close(d.fdDir))
		d.fdDir = -1
	}
	errs = append(errs, unix.Close(d.dir))
	d.dir = -1
	return errors.Join(errs...)
}

// gone reports whether the process the Dir was opened on has exited (and
// been reaped): its directory's entries can no longer be looked up.
func (d *Dir) gone() bool {
	err := unix.Faccessat(d.dir, "stat", unix.F_OK, 0)
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH)
}

// wrap is wrapErr for the Dir's process.
func (d *Dir) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if vanished(err) && d.gone() {
		return fmt.Errorf("%s of pid %d: %w", what, d.pid, ErrNoProcess)
	}
	return fmt.Errorf("%s of pid %d: %w", what, d.pid, err)
}

// read reads name whole and calls parse with its contents, which are only
// valid during the call (parse copies what it keeps). A held file is read
// through a descriptor kept open; a failed read closes it, so that the next
// one opens the file again.
func (d *Dir) read(name string, held bool, parse func(b []byte) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fd, ok := d.held[name]
	if !ok {
		var err error
		if fd, err = d.openat(name); err != nil {
			return d.wrap("read "+name, err)
		}
		if held && len(d.held) < maxHeld {
			d.held[name] = fd
			ok = true
		} else {
			defer unix.Close(fd)
		}
	}
	n, err := d.fill(fd, ok)
	if err != nil {
		if ok {
			unix.Close(fd)
			delete(d.held, name)
		}
		return d.wrap("read "+name, &fs.PathError{Op: "read", Path: name, Err: err})
	}
	return d.wrap("read "+name, parse(d.buf[:n]))
}

// fill reads fd whole into d.buf, growing it as needed: with pread from
// offset 0 (again, whole, when it filled the buffer) or, for a file just
// opened, with reads from where it is.
func (d *Dir) fill(fd int, again bool) (int, error) {
	n := 0
	for {
		var k int
		var err error
		if again {
			k, err = unix.Pread(fd, d.buf, 0)
		} else {
			k, err = unix.Read(fd, d.buf[n:])
		}
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return 0, err
		case again && k < len(d.buf):
			return k, nil
		case !again && k == 0:
			return n, nil
		}
		if n += k; again || n == len(d.buf) {
			d.buf = append(d.buf, make([]byte, len(d.buf))...)
		}
	}
}

func (d *Dir) openat(name string) (int, error) {
	fd, err := unix.Openat(d.dir, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// Status reads status.
func (d *Dir) Status() (st *Status, err error) {
	return st, d.read("status", true, func(b []byte) error {
		st, err = ParseStatus(b)
		return err
	})
}

// Maps reads maps, as ReadMaps does. The caller may modify the result.
func (d *Dir) Maps() (ms []Mapping, err error) {
	return ms, d.read("maps", false, func(b []byte) error {
		ms, err = d.maps.parse(b, func(b []byte) ([]Mapping, error) { return ParseMaps(bytes.NewReader(b)) })
		ms = slices.Clone(ms)
		return err
	})
}

// Auxv reads auxv, as ReadAuxv does.
func (d *Dir) Auxv() (v []uint64, err error) {
	return v, d.read("auxv", false, func(b []byte) error {
		v, err = ParseAuxv(b)
		return err
	})
}

// Comm reads comm, as ReadComm does.
func (d *Dir) Comm() (c string, err error) {
	return c, d.read("comm", true, func(b []byte) error {
		c = strings.TrimSuffix(string(b), "\n")
		return nil
	})
}

// Personality reads personality, as ReadPersonality does.
func (d *Dir) Personality() (v uint32, err error) {
	return v, d.read("personality", true, func(b []byte) error {
		v, err = ParsePersonality(b)
		return err
	})
}

// Limits reads limits, as ReadLimits does. The caller may modify the
// result.
func (d *Dir) Limits() (l []Limit, err error) {
	return l, d.read("limits", true, func(b []byte) error {
		l, err = d.limits.parse(b, ParseLimits)
		l = slices.Clone(l)
		return err
	})
}

// Cwd returns the target of the cwd link.
func (d *Dir) Cwd() (string, error) { return d.readLink("cwd") }

// Exe returns the target of the exe link, as ReadExe does.
func (d *Dir) Exe() (string, error) { return d.readLink("exe") }

func (d *Dir) readLink(name string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		n, err := unix.Readlinkat(d.dir, name, d.buf)
		if err != nil {
			return "", d.wrap("read "+name+" link", err)
		}
		if n < len(d.buf) {
			return string(d.buf[:n]), nil
		}
		d.buf = make([]byte, 2*len(d.buf))
	}
}

// FDs returns the open file descriptors sorted by number, as ReadFDs does.
func (d *Dir) FDs() ([]FD, error) {
	nums, err := d.fdNums()
	if err != nil {
		return nil, d.wrap("list fds", err)
	}
	fds := make([]FD, 0, len(nums))
	for _, n := range nums {
		fd, err := d.FD(n)
		if err != nil {
			if vanished(err) {
				continue // closed since the listing
			}
			return nil, err
		}
		fds = append(fds, fd)
	}
	return fds, nil
}

// fdNums lists /proc/PID/fd through a descriptor kept open, rewound for
// each listing.
func (d *Dir) fdNums() ([]int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fdDir < 0 {
		fd, err := unix.Openat(d.dir, "fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: "fd", Err: err}
		}
		d.fdDir = fd
	} else if _, err := unix.Seek(d.fdDir, 0, 0); err != nil {
		return nil, &fs.PathError{Op: "seek", Path: "fd", Err: err}
	}
	var names []string
	for {
		n, err := unix.Getdents(d.fdDir, d.buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getdents", Path: "fd", Err: err}
		}
		if n == 0 {
			break
		}
		_, _, names = unix.ParseDirent(d.buf[:n], -1, names)
	}
	return parseIDs(names)
}

// FD reads the link and fdinfo of one file descriptor, as ReadFD does.
func (d *Dir) FD(num int) (fd FD, err error) {
	target, err := d.readLink("fd/" + strconv.Itoa(num))
	if err != nil {
		return FD{}, err
	}
	err = d.read("fdinfo/"+strconv.Itoa(num), true, func(b []byte) error {
		fd, err = ParseFDInfo(bytes.NewReader(b))
		return err
	})
	fd.Num, fd.Target = num, target
	return fd, err
}

// StatFD stats the file open at fd num (what /proc/PID/fd/N leads to).
func (d *Dir) StatFD(num int) (unix.Stat_t, error) {
	var st unix.Stat_t
	name := "fd/" + strconv.Itoa(num)
	if err := unix.Fstatat(d.dir, name, &st, 0); err != nil {
		return st, d.wrap("stat "+name, err)
	}
	return st, nil
}
