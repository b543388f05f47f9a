//go:build linux

package probe

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// selfVDSOStart returns the start address of the calling process's [vdso]
// mapping, and ok false when it has none.
func selfVDSOStart() (start uint64, ok bool, err error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 6 || fields[5] != "[vdso]" {
			continue
		}
		lo, _, _ := strings.Cut(fields[0], "-")
		start, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			return 0, false, fmt.Errorf("parse /proc/self/maps line %q: %w", line, err)
		}
		return start, true, nil
	}
	if err := sc.Err(); err != nil {
		return 0, false, fmt.Errorf("read /proc/self/maps: %w", err)
	}
	return 0, false, nil
}
