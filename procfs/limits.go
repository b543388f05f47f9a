package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Limit is one resource limit of /proc/PID/limits.
type Limit struct {
	Resource int    // RLIMIT_* number
	Cur, Max uint64 // RLIM_INFINITY (all ones) for "unlimited"
}

// limitNames are the kernel's names of the resources, by RLIMIT_* number
// (fs/proc/base.c, lnames).
var limitNames = []string{
	"Max cpu time", "Max file size", "Max data size", "Max stack size",
	"Max core file size", "Max resident set", "Max processes", "Max open files",
	"Max locked memory", "Max address space", "Max file locks", "Max pending signals",
	"Max msgqueue size", "Max nice priority", "Max realtime priority", "Max realtime timeout",
}

// ReadLimits reads /proc/PID/limits. Unlike prlimit(2) on another process,
// it needs no CAP_SYS_RESOURCE when the ids differ.
func ReadLimits(pid int) ([]Limit, error) {
	b, err := readPath(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return nil, err
	}
	l, err := ParseLimits(b)
	if err != nil {
		return nil, fmt.Errorf("/proc/%d/limits: %w", pid, err)
	}
	return l, nil
}

// ParseLimits parses the text of /proc/PID/limits.
func ParseLimits(b []byte) ([]Limit, error) {
	var out []Limit
	sc := bufio.NewScanner(bytes.NewReader(b))
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if !strings.HasPrefix(line, "Limit ") {
				return nil, fmt.Errorf("unexpected header %q", line)
			}
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		res := -1
		for i, n := range limitNames {
			if strings.HasPrefix(line, n+" ") {
				res = i
				line = line[len(n):]
				break
			}
		}
		if res < 0 {
			return nil, fmt.Errorf("unknown limit line %q", line)
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("limit line %q: want soft and hard values", line)
		}
		cur, err := limitValue(f[0])
		if err != nil {
			return nil, err
		}
		max, err := limitValue(f[1])
		if err != nil {
			return nil, err
		}
		out = append(out, Limit{Resource: res, Cur: cur, Max: max})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no limits")
	}
	return out, nil
}

func limitValue(s string) (uint64, error) {
	if s == "unlimited" {
		return math.MaxUint64, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("limit value %q: %w", s, err)
	}
	return v, nil
}
