//go:build linux

package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// tracefsDirs are where tracefs is looked for, in order; they are also the
// places cilium/ebpf looks when it attaches to a tracepoint.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// pageFaultEvents are the x86 fault tracepoints (category/name).
var pageFaultEvents = []string{
	"exceptions/page_fault_user",
	"exceptions/page_fault_kernel",
}

// memorySyscallEvents are the syscall tracepoints that tell precopy the
// target's address space changed (sys_exit gives the result address).
var memorySyscallEvents = []string{
	"syscalls/sys_enter_mmap",
	"syscalls/sys_enter_munmap",
	"syscalls/sys_enter_mremap",
	"syscalls/sys_enter_brk",
	"syscalls/sys_enter_mprotect",
	"syscalls/sys_enter_madvise",
	"syscalls/sys_exit_mmap",
	"syscalls/sys_exit_mremap",
	"syscalls/sys_exit_brk",
}

// tracefsRoot returns the first of tracefsDirs where tracefs is mounted. It
// reads /proc/self/mountinfo instead of looking at the directories: looking
// up /sys/kernel/debug/tracing would automount tracefs there, and a probe
// leaves nothing behind.
func tracefsRoot() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	mounted := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 5 || sep+1 >= len(fields) {
			continue
		}
		if fields[sep+1] == "tracefs" {
			mounted[fields[4]] = true
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	for _, d := range tracefsDirs {
		if mounted[d] {
			return d, nil
		}
	}
	return "", nil
}

// checkEvents returns which of events (category/name) are missing under
// root/events.
func checkEvents(root string, events []string) (missing []string, err error) {
	for _, ev := range events {
		_, err := os.Stat(filepath.Join(root, "events", ev))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, strings.Replace(ev, "/", ":", 1))
		case err != nil:
			return nil, err
		}
	}
	return missing, nil
}

// probeEvents is the shared body of the tracepoint probes; without says what
// precopy loses when they are missing.
func probeEvents(events []string, without string) (Status, string) {
	root, err := tracefsRoot()
	if err != nil {
		return Unknown, "cannot tell where tracefs is mounted: " + err.Error()
	}
	if root == "" {
		return Unknown, fmt.Sprintf("tracefs is not mounted at %s (mount -t tracefs nodev %s)", strings.Join(tracefsDirs, " or "), tracefsDirs[0])
	}
	missing, err := checkEvents(root, events)
	if errors.Is(err, fs.ErrPermission) {
		return Unknown, fmt.Sprintf("cannot look under %s/events (tracefs is usually readable by root only): %v", root, err)
	}
	if err != nil {
		return Unknown, err.Error()
	}
	if len(missing) == 0 {
		return OK, fmt.Sprintf("all %d events present under %s/events", len(events), root)
	}
	return Missing, fmt.Sprintf("%s missing under %s/events: %s", strings.Join(missing, ", "), root, without)
}

func probeTPPageFault(context.Context) (Status, string) {
	return probeEvents(pageFaultEvents, "they exist on x86 only; precopy runs without fault telemetry (no live dirty rate or hot pages), PAGEMAP_SCAN still gives the dirty set")
}

func probeTPMemorySyscalls(context.Context) (Status, string) {
	return probeEvents(memorySyscallEvents, "needs CONFIG_FTRACE_SYSCALLS; precopy finds address-space changes by re-reading /proc/PID/maps every round")
}
