//go:build linux

package probe

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// maxConfigBytes bounds how much of a kernel config is read (real ones are
// a few hundred KiB).
const maxConfigBytes = 16 << 20

// kernelConfig returns the value of option name (CONFIG_...) in the running
// kernel's build configuration: "y", "m", a string or number, or "" when the
// option is not set. It reads /proc/config.gz (CONFIG_IKCONFIG_PROC) or
// /boot/config-$(uname -r); src names the file read, and found is false when
// neither is available.
func kernelConfig(name string) (value, src string, found bool, err error) {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return "", "/proc/config.gz", false, fmt.Errorf("read /proc/config.gz: %w", err)
		}
		defer zr.Close()
		v, err := scanConfig(io.LimitReader(zr, maxConfigBytes), name)
		return v, "/proc/config.gz", err == nil, err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", "", false, os.NewSyscallError("uname", err)
	}
	path := "/boot/config-" + unix.ByteSliceToString(uts.Release[:])
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", false, nil
	}
	if err != nil {
		return "", path, false, err
	}
	defer f.Close()
	v, err := scanConfig(io.LimitReader(f, maxConfigBytes), name)
	return v, path, err == nil, err
}

// scanConfig finds name in a kernel .config.
func scanConfig(r io.Reader, name string) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			return strings.Trim(v, `"`), nil
		}
		if line == "# "+name+" is not set" {
			return "", nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", nil
}

// configNote describes option name from the kernel config for a Detail,
// or returns "" when no config is available.
func configNote(name string) string {
	v, src, found, err := kernelConfig(name)
	switch {
	case err != nil:
		return fmt.Sprintf("cannot read kernel config: %v", err)
	case !found:
		return ""
	case v == "":
		return fmt.Sprintf("%s is not set in %s", name, src)
	}
	return fmt.Sprintf("%s=%s in %s", name, v, src)
}
