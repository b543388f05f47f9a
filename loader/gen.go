package loader

// Regenerate track_bpfel.go and track_bpfel.o from bpf/track.c after any
// change to bpf/: needs clang, llvm-strip and libbpf's headers (see
// bpf/README.md). -target bpfel builds one little-endian object; the
// programs read x86-64 registers, and Load refuses other architectures.
//go:generate go tool bpf2go -tags linux -target bpfel -type event -type event_kind track ../bpf/track.c -- -O2 -g -Wall -Werror
