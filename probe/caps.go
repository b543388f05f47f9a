//go:build linux

package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procStatus returns the "Key:\tvalue" lines of /proc/self/status.
func procStatus() (map[string]string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/status: %w", err)
	}
	return m, nil
}

// effectiveCaps returns CapEff of the calling process. Capabilities are
// per thread, but crbpf never changes them, so all threads agree.
func effectiveCaps() (uint64, error) {
	st, err := procStatus()
	if err != nil {
		return 0, err
	}
	v, ok := st["CapEff"]
	if !ok {
		return 0, errors.New("no CapEff line in /proc/self/status")
	}
	caps, err := strconv.ParseUint(v, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("parse CapEff %q: %w", v, err)
	}
	return caps, nil
}

func hasCap(caps uint64, c int) bool { return c < 64 && caps&(1<<uint(c)) != 0 }

// seccompNote says, when a seccomp filter is installed on the caller, that
// it may be what refused a system call ("" otherwise).
func seccompNote() string {
	st, err := procStatus()
	if err != nil {
		return ""
	}
	if st["Seccomp"] == "2" {
		return "a seccomp filter is installed on crbpf and may be refusing the call (containers often block it)"
	}
	return ""
}

// yamaPtraceScope is the Yama sysctl; absent when Yama is not built in.
const yamaPtraceScope = "/proc/sys/kernel/yama/ptrace_scope"

func probePtrace(context.Context) (Status, string) {
	caps, err := effectiveCaps()
	if err != nil {
		return Unknown, "cannot read own capabilities: " + err.Error()
	}
	if !hasCap(caps, unix.CAP_SYS_PTRACE) {
		return Missing, fmt.Sprintf("CAP_SYS_PTRACE is not in the effective set (CapEff %016x): run crbpf as root", caps)
	}
	b, err := os.ReadFile(yamaPtraceScope)
	if errors.Is(err, fs.ErrNotExist) {
		return OK, "CAP_SYS_PTRACE present; Yama not built in (no kernel.yama.ptrace_scope)"
	}
	if err != nil {
		return Unknown, fmt.Sprintf("CAP_SYS_PTRACE present; cannot read %s: %v", yamaPtraceScope, err)
	}
	v := strings.TrimSpace(string(b))
	switch v {
	case "0", "1", "2":
		// 1 (descendants only) and 2 (admin only) let a CAP_SYS_PTRACE
		// holder attach to anything.
		return OK, "CAP_SYS_PTRACE present; kernel.yama.ptrace_scope=" + v
	case "3":
		return Missing, "kernel.yama.ptrace_scope=3 forbids every ptrace attach, even for root, until reboot"
	}
	return Unknown, fmt.Sprintf("CAP_SYS_PTRACE present; unexpected kernel.yama.ptrace_scope=%q", v)
}

func probeRestoreCaps(context.Context) (Status, string) {
	caps, err := effectiveCaps()
	if err != nil {
		return Unknown, "cannot read own capabilities: " + err.Error()
	}
	// Without CAP_SYS_RESOURCE restart still works, minus a few items.
	noResource := ""
	if !hasCap(caps, unix.CAP_SYS_RESOURCE) {
		noResource = "CAP_SYS_RESOURCE absent: hard rlimits above crbpf's own and single-field PR_SET_MM_* values will not be restored"
	}
	var have []string
	if hasCap(caps, unix.CAP_SYS_ADMIN) {
		have = append(have, "CAP_SYS_ADMIN")
	}
	if hasCap(caps, unix.CAP_CHECKPOINT_RESTORE) {
		have = append(have, "CAP_CHECKPOINT_RESTORE")
	}
	if len(have) == 0 {
		return Missing, joinDetail(fmt.Sprintf("neither CAP_SYS_ADMIN nor CAP_CHECKPOINT_RESTORE is effective (CapEff %016x): clone3 set_tid and the exe link of PR_SET_MM_MAP are refused", caps), noResource)
	}
	return OK, joinDetail(strings.Join(have, " and ")+" effective", noResource)
}
