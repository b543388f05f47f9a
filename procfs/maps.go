package procfs

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mapping is one line of /proc/PID/maps: a VMA of the target.
type Mapping struct {
	Start, End uint64 // [Start, End), page aligned
	Read       bool
	Write      bool
	Exec       bool
	Shared     bool   // 's' (MAP_SHARED) rather than 'p' (private)
	Offset     uint64 // file offset in bytes (vm_pgoff << PAGE_SHIFT)
	Major      uint32 // device of the backing inode
	Minor      uint32
	Inode      uint64
	// Name is the path or pseudo name ("[heap]", "[stack]", "[vdso]",
	// "[anon:NAME]", "/memfd:NAME (deleted)", ...) exactly as the kernel
	// printed it, or "" for an unnamed anonymous mapping. It may contain
	// spaces and start with spaces.
	Name string
}

const deletedSuffix = " (deleted)"

// Len is the length of the mapping in bytes.
func (m Mapping) Len() uint64 { return m.End - m.Start }

// Prot returns the protection as PROT_* bits.
func (m Mapping) Prot() uint32 {
	var p uint32
	if m.Read {
		p |= unix.PROT_READ
	}
	if m.Write {
		p |= unix.PROT_WRITE
	}
	if m.Exec {
		p |= unix.PROT_EXEC
	}
	return p
}

// IsAnon reports whether the mapping is anonymous memory not backed by any
// inode: unnamed, [heap], [stack] or a named anonymous mapping
// ([anon:NAME]). Shared anonymous memory is not: it is backed by a shmem inode
// ("/dev/zero (deleted)"), and SysV shm ("/SYSV00000000 (deleted)") may even
// show inode 0. Kernel-provided pages ([vdso], [vvar], [vsyscall], ...) are
// not anonymous either.
func (m Mapping) IsAnon() bool {
	if m.Inode != 0 {
		return false
	}
	switch {
	case m.Name == "", m.Name == "[heap]", m.Name == "[stack]":
		return true
	case strings.HasPrefix(m.Name, "[anon:"), strings.HasPrefix(m.Name, "[stack:"):
		// [stack:TID] is how kernels before 4.5 showed thread stacks.
		return strings.HasSuffix(m.Name, "]")
	}
	return false
}

// Deleted reports whether the name carries the kernel's " (deleted)" suffix:
// the backing file was unlinked (memfds, shared anonymous memory and SysV
// shm always are).
func (m Mapping) Deleted() bool { return strings.HasSuffix(m.Name, deletedSuffix) }

// Path returns Name without the " (deleted)" suffix.
func (m Mapping) Path() string { return strings.TrimSuffix(m.Name, deletedSuffix) }

// ReadMaps reads /proc/PID/maps. Mappings are in address order. The file is
// read in several system calls; stop the target for a consistent result.
func ReadMaps(pid int) ([]Mapping, error) {
	b, err := readFile(pid, "maps")
	if err != nil {
		return nil, err
	}
	ms, err := ParseMaps(bytes.NewReader(b))
	if err != nil {
		return nil, wrapErr(pid, "read maps", err)
	}
	return ms, nil
}

// ParseMaps parses the contents of /proc/PID/maps. Empty lines are skipped.
func ParseMaps(r io.Reader) ([]Mapping, error) {
	var ms []Mapping
	err := eachLine(r, func(n int, line []byte) error {
		if len(line) == 0 {
			return nil
		}
		m, err := parseMapsLine(string(line))
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		ms = append(ms, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse maps: %w", err)
	}
	return ms, nil
}

// mapsNameColumn is where a 64-bit kernel starts the name: it pads the
// header to 25+6*sizeof(void*)-1 columns and then writes one more space
// (show_vma_header_prefix, seq_pad).
const mapsNameColumn = 25 + 6*8 - 1

// parseMapsLine parses
//
//	start-end perms offset major:minor inode [padding name]
func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	rest := line
	field := func(what string) (string, error) {
		f, r, ok := strings.Cut(rest, " ")
		if !ok && f == "" {
			return "", fmt.Errorf("missing %s", what)
		}
		rest = r
		return f, nil
	}

	addr, err := field("address range")
	if err != nil {
		return m, err
	}
	lo, hi, ok := strings.Cut(addr, "-")
	if !ok {
		return m, fmt.Errorf("address range %q: missing '-'", addr)
	}
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, fmt.Errorf("start address: %w", err)
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, fmt.Errorf("end address: %w", err)
	}
	if m.End < m.Start {
		return m, fmt.Errorf("address range %q: end before start", addr)
	}

	perms, err := field("permissions")
	if err != nil {
		return m, err
	}
	if len(perms) != 4 {
		return m, fmt.Errorf("permissions %q: want 4 characters", perms)
	}
	flags := [4]*bool{&m.Read, &m.Write, &m.Exec, &m.Shared}
	for i, set := range [4]byte{'r', 'w', 'x', 's'} {
		unset := byte('-')
		if i == 3 {
			unset = 'p'
		}
		switch perms[i] {
		case set:
			*flags[i] = true
		case unset:
		default:
			return m, fmt.Errorf("permissions %q: bad character %q", perms, perms[i])
		}
	}

	off, err := field("offset")
	if err != nil {
		return m, err
	}
	if m.Offset, err = strconv.ParseUint(off, 16, 64); err != nil {
		return m, fmt.Errorf("offset: %w", err)
	}

	dev, err := field("device")
	if err != nil {
		return m, err
	}
	maj, min, ok := strings.Cut(dev, ":")
	if !ok {
		return m, fmt.Errorf("device %q: missing ':'", dev)
	}
	v, err := strconv.ParseUint(maj, 16, 32)
	if err != nil {
		return m, fmt.Errorf("device major: %w", err)
	}
	m.Major = uint32(v)
	if v, err = strconv.ParseUint(min, 16, 32); err != nil {
		return m, fmt.Errorf("device minor: %w", err)
	}
	m.Minor = uint32(v)

	ino, err := field("inode")
	if err != nil {
		return m, err
	}
	if m.Inode, err = strconv.ParseUint(ino, 10, 64); err != nil {
		return m, fmt.Errorf("inode: %w", err)
	}

	// rest is what follows the space after the inode. The kernel pads
	// the header to mapsNameColumn and adds one space; when the header
	// fits, the name starts at a known column and may itself begin with
	// spaces. Otherwise (other word sizes, hand-written input) skip all
	// the padding.
	hdr := len(line) - len(rest)
	pad := max(mapsNameColumn-hdr, 0) + 1
	if len(rest) > pad && strings.Count(rest[:pad], " ") == pad {
		m.Name = rest[pad:]
	} else {
		m.Name = strings.TrimLeft(rest, " ")
	}
	return m, nil
}
