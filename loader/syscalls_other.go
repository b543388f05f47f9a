//go:build linux && !amd64

package loader

import (
	"fmt"
	"runtime"
)

// syscallClasses: the programs read syscall arguments from x86-64
// registers and the table holds x86-64 numbers; elsewhere there is no
// telemetry (pre-copy still tracks writes with PAGEMAP_SCAN).
func syscallClasses() (*[syscallTable]trackSyscallClass, error) {
	return nil, fmt.Errorf("syscall telemetry on %s: %w", runtime.GOARCH, ErrNotSupported)
}
