//go:build linux

package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

const vmlinuxBTF = "/sys/kernel/btf/vmlinux"

// btfMagic starts every BTF blob (struct btf_header.magic).
const btfMagic = 0xeb9f

// degradedTelemetry is what precopy loses without its eBPF programs.
const degradedTelemetry = "precopy runs without eBPF telemetry (no live dirty rate, hot pages or address-space triggers); PAGEMAP_SCAN still gives the dirty set"

// probeBTF checks that the kernel exposes its BTF, which the CO-RE
// relocations of crbpf's eBPF programs are resolved against.
func probeBTF(context.Context) (Status, string) {
	f, err := os.Open(vmlinuxBTF)
	if errors.Is(err, fs.ErrNotExist) {
		return Missing, joinDetail(vmlinuxBTF+" does not exist (kernel built without CONFIG_DEBUG_INFO_BTF): "+degradedTelemetry, configNote("CONFIG_DEBUG_INFO_BTF"))
	}
	if err != nil {
		return Unknown, err.Error()
	}
	defer f.Close()
	var hdr [2]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return Unknown, fmt.Sprintf("read %s: %v", vmlinuxBTF, err)
	}
	if m := binary.NativeEndian.Uint16(hdr[:]); m != btfMagic {
		return Missing, fmt.Sprintf("%s starts with %#04x, not the BTF magic %#04x: %s", vmlinuxBTF, m, btfMagic, degradedTelemetry)
	}
	size := ""
	if st, err := f.Stat(); err == nil {
		size = fmt.Sprintf(", %d bytes", st.Size())
	}
	return OK, vmlinuxBTF + " present (BTF magic" + size + ")"
}

// probeBPFTracepoint loads (and closes at once) a minimal BTF-enabled raw
// tracepoint program (tp_btf) for raw_syscalls:sys_enter, the kind of
// program crbpf's telemetry is made of. It is not attached.
func probeBPFTracepoint(context.Context) (Status, string) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceRawTp,
		AttachTo:     "sys_enter",
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err == nil {
		p.Close()
		return OK, "loaded and closed a minimal tp_btf program for sys_enter"
	}
	switch {
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, btf.ErrNotFound):
		return Missing, joinDetail(fmt.Sprintf("tp_btf programs not supported (%v): %s", err, degradedTelemetry), configNote("CONFIG_BPF_SYSCALL"))
	case errors.Is(err, unix.EPERM):
		return Missing, joinDetail(fmt.Sprintf("loading a tp_btf program was refused (%v): needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; %s", err, degradedTelemetry), seccompNote())
	}
	return Unknown, fmt.Sprintf("probe failed: %v", err)
}
