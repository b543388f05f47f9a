//go:build linux

package loader

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// tracefsMountPoint is where Load mounts tracefs when no tracefs is mounted:
// the directory the kernel creates for it.
const tracefsMountPoint = "/sys/kernel/tracing"

// ensureTracefs returns the directory of a mounted tracefs, mounting one at
// tracefsMountPoint when there is none. mounted reports whether it did.
//
// Tracepoint links need it: a tracepoint's perf event is opened by its ID,
// which only tracefs publishes (events/GROUP/NAME/id). cilium/ebpf looks the
// mount up once per process and caches the answer, so this must run before
// the first attach in the process, and a mount made here is left in place
// (unmounting it would break later Loads in the same process).
func ensureTracefs() (dir string, mounted bool, err error) {
	if dir, err := findTracefs(); err != nil || dir != "" {
		return dir, false, err
	}
	if err := unix.Mount("nodev", tracefsMountPoint, "tracefs", 0, ""); err != nil {
		err = os.NewSyscallError("mount", err)
		if errors.Is(err, unix.ENODEV) {
			err = fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
		return "", false, fmt.Errorf("mount tracefs at %s (no tracefs is mounted, and tracepoint IDs are only published there): %w",
			tracefsMountPoint, err)
	}
	return tracefsMountPoint, true, nil
}

// findTracefs returns the first tracefs mount of this mount namespace (or the
// tracing directory of a debugfs mount on kernels where tracefs lives inside
// debugfs), the same choice cilium/ebpf makes, or "" when there is none.
func findTracefs() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	return findTracefsIn(f)
}

func findTracefsIn(r io.Reader) (string, error) {
	var debugfs []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 || f[3] != "/" {
			continue
		}
		mnt := unescapeMountinfo(f[4])
		switch g[0] {
		case "tracefs":
			return mnt, nil
		case "debugfs":
			debugfs = append(debugfs, filepath.Join(mnt, "tracing"))
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	for _, d := range debugfs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d, nil
		}
	}
	return "", nil
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) of
// /proc/self/mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// tracepointExists reports whether tracefs dir lists the tracepoint.
func tracepointExists(dir, group, name string) bool {
	_, err := os.Stat(filepath.Join(dir, "events", group, name, "id"))
	return err == nil
}
