//go:build linux

package probe

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// pageFaultTracepoints are the x86 fault tracepoints the write-fault
// counters attach to.
var pageFaultTracepoints = []string{"page_fault_user", "page_fault_kernel"}

// syscallTracepoints are the raw syscall tracepoints (raw_syscalls:sys_enter
// and sys_exit) the address-space and state-change telemetry attaches to,
// filtering by syscall number.
var syscallTracepoints = []string{"sys_enter", "sys_exit"}

// probeTracepoints reports which of the tracepoints the kernel's BTF
// describes: a tp_btf program attaches to tracepoint NAME through the
// btf_trace_NAME typedef. without says what precopy loses when some are
// missing.
func probeTracepoints(names []string, without string) (Status, string) {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return Unknown, fmt.Sprintf("cannot read the kernel's BTF (%v): tracepoints are looked up there", err)
	}
	var missing []string
	for _, n := range names {
		var td *btf.Typedef
		switch err := kernel.TypeByName("btf_trace_"+n, &td); {
		case errors.Is(err, btf.ErrNotFound):
			missing = append(missing, n)
		case err != nil:
			return Unknown, fmt.Sprintf("look up tracepoint %s in the kernel's BTF: %v", n, err)
		}
	}
	if len(missing) == 0 {
		return OK, fmt.Sprintf("%s described by the kernel's BTF", strings.Join(names, ", "))
	}
	return Missing, fmt.Sprintf("%s not in the kernel's BTF: %s", strings.Join(missing, ", "), without)
}

func probeTPPageFault(context.Context) (Status, string) {
	return probeTracepoints(pageFaultTracepoints, "they exist on x86 only; precopy runs without fault telemetry (no live dirty rate or hot pages), PAGEMAP_SCAN still gives the dirty set")
}

func probeTPMemorySyscalls(context.Context) (Status, string) {
	return probeTracepoints(syscallTracepoints, "precopy finds address-space changes by re-reading /proc/PID/maps every round, and reads all task state inside the freeze")
}
