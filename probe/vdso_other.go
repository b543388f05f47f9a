//go:build linux && !amd64

package probe

import "context"

// probeArchMapVDSO: ARCH_MAP_VDSO_64 is an x86-64 arch_prctl. Other
// architectures would have to move the vDSO with mremap, which crbpf's
// restore does not do.
func probeArchMapVDSO(context.Context) (Status, string) {
	return Missing, "ARCH_MAP_VDSO_64 exists on x86-64 only; crbpf restores the vDSO only there"
}
