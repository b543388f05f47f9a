package crid

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// DefaultStateDir is the state directory used when CRBPF_STATE_DIR is unset.
const DefaultStateDir = "/var/lib/crbpf"

// EnvStateDir is the environment variable that overrides DefaultStateDir.
const EnvStateDir = "CRBPF_STATE_DIR"

// File names inside the state directory.
const (
	counterFile = "crid"
	lockFile    = "crid.lock"
	tempFile    = "crid.tmp"
)

// maxFileSize bounds what is read from the counter file: 20 digits and a
// newline hold any uint64.
const maxFileSize = 21

// ErrCorrupt is returned when the counter file does not hold a plain
// decimal number. The file is left as it is: resetting it would reuse ids.
var ErrCorrupt = errors.New("checkpoint id counter corrupt")

// StateDirFromEnv returns $CRBPF_STATE_DIR if it is set and not empty,
// else DefaultStateDir.
func StateDirFromEnv() string {
	if d := os.Getenv(EnvStateDir); d != "" {
		return d
	}
	return DefaultStateDir
}

// Counter is the checkpoint id counter of one state directory. It holds no
// resources; it is safe for concurrent use.
type Counter struct {
	dir string
}

// Open returns the counter of stateDir, creating the directory (mode 0700,
// and its parents) if needed.
func Open(stateDir string) (*Counter, error) {
	if stateDir == "" {
		return nil, errors.New("open checkpoint id counter: empty state directory")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("open checkpoint id counter: %w", err)
	}
	return &Counter{dir: stateDir}, nil
}

// Dir returns the state directory.
func (c *Counter) Dir() string { return c.dir }

// Next hands out a new checkpoint id: one more than the last, durable
// before it is returned. See the package documentation for why an id is
// never handed out twice.
func (c *Counter) Next() (id uint64, err error) {
	lock, err := os.OpenFile(filepath.Join(c.dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, fmt.Errorf("next checkpoint id: %w", err)
	}
	defer lock.Close() // releases the flock
	if err := flock(lock, unix.LOCK_EX); err != nil {
		return 0, fmt.Errorf("next checkpoint id: lock %s: %w", lock.Name(), err)
	}
	last, err := c.Last()
	if err != nil {
		return 0, fmt.Errorf("next checkpoint id: %w", err)
	}
	if last == math.MaxUint64 {
		return 0, fmt.Errorf("next checkpoint id: %s: ids exhausted", filepath.Join(c.dir, counterFile))
	}
	id = last + 1
	if err := c.store(id); err != nil {
		return 0, fmt.Errorf("next checkpoint id: %w", err)
	}
	return id, nil
}

// Last returns the last id handed out, 0 if none. It takes no lock: the
// counter file is replaced atomically, so it is always a complete value.
func (c *Counter) Last() (uint64, error) {
	path := filepath.Join(c.dir, counterFile)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	n, ok := parse(b)
	if !ok {
		return 0, fmt.Errorf("%s holds %q, not a decimal number (%w); it is left as it is: "+
			"write a number at least as large as every checkpoint id in use into it", path, b, ErrCorrupt)
	}
	return n, nil
}

// parse accepts exactly what store writes: a decimal number without sign,
// spaces or leading zeros, followed by a newline (optional).
func parse(b []byte) (uint64, bool) {
	if len(b) > maxFileSize {
		return 0, false
	}
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(string(b), 10, 64)
	return n, err == nil
}

// store makes id the counter's durable value: write and fsync a temporary
// file, rename it over the counter file, fsync the directory.
// Precondition: the caller holds the lock.
func (c *Counter) store(id uint64) error {
	tmp := filepath.Join(c.dir, tempFile)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(strconv.FormatUint(id, 10) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, counterFile)); err != nil {
		return err
	}
	d, err := os.Open(c.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", c.dir, err)
	}
	return nil
}

// flock applies how (unix.LOCK_EX, ...) to f, retrying on EINTR.
func flock(f *os.File, how int) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		for {
			ferr = unix.Flock(int(fd), how)
			if ferr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return os.NewSyscallError("flock", ferr)
}
