package testutil

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Capability bits (linux/capability.h) that checkpoint and restart need.
const (
	capSysPtrace = 19
	capSysAdmin  = 21
)

// RequireRoot skips the test unless it runs as root with CAP_SYS_ADMIN and
// CAP_SYS_PTRACE in its effective set. When the environment says CI=true it
// fails instead, so CI cannot pass by skipping.
func RequireRoot(t testing.TB) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = fmt.Sprintf("needs root (euid is %d)", os.Geteuid())
	} else if eff, err := effectiveCaps(); err != nil {
		reason = "cannot read capabilities: " + err.Error()
	} else {
		var missing []string
		if eff&(1<<capSysAdmin) == 0 {
			missing = append(missing, "CAP_SYS_ADMIN")
		}
		if eff&(1<<capSysPtrace) == 0 {
			missing = append(missing, "CAP_SYS_PTRACE")
		}
		if len(missing) > 0 {
			reason = "needs " + strings.Join(missing, " and ")
		}
	}
	if reason == "" {
		return
	}
	SkipOrFail(t, reason)
}

// SkipOrFail skips the test for reason, except when the environment says
// CI=true: then it fails, so CI cannot pass by skipping.
func SkipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI=true, so this is a failure, not a skip", reason)
	}
	t.Skip(reason)
}

// effectiveCaps returns CapEff from /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no CapEff line in /proc/self/status")
}
