package loader

// Regenerate track_bpfel.go and track_bpfel.o from bpf/track.c after any
// change to bpf/: needs clang, llvm-strip and libbpf's headers (see
// bpf/README.md). -target bpfel builds one object for every little-endian
// architecture (amd64, arm64, ...); the programs use no arch-specific macros.
//go:generate go tool bpf2go -tags linux -target bpfel -type event -type event_kind track ../bpf/track.c -- -O2 -g -Wall -Werror
