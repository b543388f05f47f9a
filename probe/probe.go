//go:build linux

package probe

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Status is the outcome of one probe.
type Status int

const (
	// OK: the feature is there and crbpf may use it.
	OK Status = iota
	// Missing: the kernel, its configuration or crbpf's privileges lack
	// the feature; Result.Detail says which and what it costs.
	Missing
	// Unknown: the probe could not decide (it was not run, the environment
	// made it unsafe or an unexpected error came back); Result.Detail says
	// why.
	Unknown
)

// String returns "ok", "missing" or "unknown".
func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Missing:
		return "missing"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText makes a Status appear as its String in JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Commands of crbpf, as they appear in Result.NeededBy.
const (
	CmdCheckpoint = "checkpoint"
	CmdRestart    = "restart"
	CmdPrecopy    = "precopy"
)

// Result is what one probe found.
type Result struct {
	// Name is a short stable identifier (one of the Name* constants).
	Name string `json:"name"`
	// Title describes the feature for a person.
	Title string `json:"title"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Detail is one line: what was seen (errno values included), why the
	// feature is missing and, for an optional feature, what works
	// without it.
	Detail string `json:"detail"`
	// NeededBy lists the crbpf commands that use the feature (Cmd*); empty
	// for a purely informational result.
	NeededBy []string `json:"needed_by"`
	// Required is true when the commands in NeededBy cannot work without
	// the feature, false when they run degraded (Detail says how).
	Required bool `json:"required"`
}

// Names of the results, in the order All returns them.
const (
	NamePtrace           = "ptrace"
	NameRestoreCaps      = "restore-caps"
	NameClone3SetTID     = "clone3-set-tid"
	NamePRSetMMMap       = "pr-set-mm-map"
	NameArchMapVDSO      = "arch-map-vdso"
	NameUffdWPAsync      = "uffd-wp-async"
	NamePagemapScan      = "pagemap-scan"
	NameBTF              = "btf"
	NameBPFTracepoint    = "bpf-tracepoint"
	NameTPPageFault      = "tracepoint-page-fault"
	NameTPMemorySyscalls = "tracepoint-mm-syscalls"
	NameSoftDirty        = "soft-dirty"
)

// probe describes one feature; run fills in Status and Detail of a Result
// that already carries the static fields.
type probe struct {
	name     string
	title    string
	neededBy []string
	required bool
	run      func(ctx context.Context) (Status, string)
}

var (
	needCheckpointRestart = []string{CmdCheckpoint, CmdRestart}
	needRestart           = []string{CmdRestart}
	needPrecopy           = []string{CmdPrecopy}
)

// probes is the fixed list All runs, in order.
var probes = []probe{
	{NamePtrace, "ptrace attach (CAP_SYS_PTRACE, Yama ptrace_scope)", needCheckpointRestart, true, probePtrace},
	{NameRestoreCaps, "capabilities to restore (CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE)", needRestart, true, probeRestoreCaps},
	{NameClone3SetTID, "clone3 with set_tid (restore original PID)", needRestart, false, probeClone3SetTID},
	{NamePRSetMMMap, "prctl PR_SET_MM_MAP (restore mm layout and exe link)", needRestart, true, probePRSetMMMap},
	{NameArchMapVDSO, "arch_prctl ARCH_MAP_VDSO_64 (restore vDSO address)", needRestart, true, probeArchMapVDSO},
	{NameUffdWPAsync, "userfaultfd async write-protect (UFFD_FEATURE_WP_ASYNC)", needPrecopy, true, probeUffdWPAsync},
	{NamePagemapScan, "PAGEMAP_SCAN ioctl on /proc/PID/pagemap", needPrecopy, true, probePagemapScan},
	{NameBTF, "kernel BTF (/sys/kernel/btf/vmlinux)", needPrecopy, false, probeBTF},
	{NameBPFTracepoint, "eBPF raw tracepoint programs (tp_btf)", needPrecopy, false, probeBPFTracepoint},
	{NameTPPageFault, "page fault tracepoints (exceptions:page_fault_user/kernel)", needPrecopy, false, probeTPPageFault},
	{NameTPMemorySyscalls, "syscall tracepoints (raw_syscalls:sys_enter/sys_exit)", needPrecopy, false, probeTPMemorySyscalls},
	{NameSoftDirty, "soft-dirty page tracking (CONFIG_MEM_SOFT_DIRTY; informational)", nil, false, probeSoftDirty},
}

// All runs every probe, in a fixed order, and returns one Result per
// feature. Probes act only on the calling process and undo what they did
// before returning: no other process is touched, no child process, fd,
// mapping or BPF object is left behind. A probe that has not started when
// ctx is done is reported as Unknown.
//
// All takes a few milliseconds; it is safe for concurrent use.
func All(ctx context.Context) []Result {
	out := make([]Result, 0, len(probes))
	for _, p := range probes {
		r := Result{
			Name:     p.name,
			Title:    p.title,
			NeededBy: append([]string(nil), p.neededBy...),
			Required: p.required,
		}
		if err := ctx.Err(); err != nil {
			r.Status, r.Detail = Unknown, "not probed: "+err.Error()
		} else {
			r.Status, r.Detail = p.run(ctx)
		}
		out = append(out, r)
	}
	return out
}

// errnoString renders an errno as "EEXIST (errno 17)".
func errnoString(e unix.Errno) string {
	if name := unix.ErrnoName(e); name != "" {
		return fmt.Sprintf("%s (errno %d)", name, int(e))
	}
	return fmt.Sprintf("errno %d", int(e))
}

// joinDetail joins the non-empty parts with "; ".
func joinDetail(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "; ")
}
