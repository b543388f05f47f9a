package procfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// AT_NULL ends the auxiliary vector.
const AT_NULL = 0

// ReadAuxv reads /proc/PID/auxv. It fails (ESRCH, wrapped) for a task without
// an address space.
func ReadAuxv(pid int) ([]uint64, error) {
	b, err := readFile(pid, "auxv")
	if err != nil {
		return nil, err
	}
	v, err := ParseAuxv(b)
	if err != nil {
		return nil, wrapErr(pid, "read auxv", err)
	}
	return v, nil
}

// ParseAuxv parses the auxiliary vector: native-endian (type, value) pairs of
// uint64. The result is a flat slice of types and values that ends with the
// AT_NULL pair; anything after that pair is dropped. Empty input gives an
// empty vector.
func ParseAuxv(b []byte) ([]uint64, error) {
	if len(b) == 0 {
		return []uint64{}, nil
	}
	if len(b)%16 != 0 {
		return nil, fmt.Errorf("parse auxv: %d bytes is not a whole number of 16-byte entries", len(b))
	}
	v := make([]uint64, 0, len(b)/8)
	for i := 0; i < len(b); i += 16 {
		typ := binary.NativeEndian.Uint64(b[i:])
		v = append(v, typ, binary.NativeEndian.Uint64(b[i+8:]))
		if typ == AT_NULL {
			return v, nil
		}
	}
	return nil, fmt.Errorf("parse auxv: no AT_NULL entry")
}

// ReadCmdline reads /proc/PID/cmdline. It is empty for kernel threads and
// zombies.
func ReadCmdline(pid int) ([]string, error) {
	b, err := readFile(pid, "cmdline")
	if err != nil {
		return nil, err
	}
	return ParseCmdline(b), nil
}

// ParseCmdline splits NUL-terminated arguments. A missing final NUL (a
// process that rewrote its argument area) is tolerated; empty arguments are
// kept.
func ParseCmdline(b []byte) []string {
	if len(b) == 0 {
		return []string{}
	}
	b = bytes.TrimSuffix(b, []byte{0})
	return strings.Split(string(b), "\x00")
}

// ReadComm reads /proc/PID/comm without its trailing newline. Other
// whitespace is part of the name and kept.
func ReadComm(pid int) (string, error) {
	b, err := readFile(pid, "comm")
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// ReadPersonality reads /proc/PID/personality (reading it needs the right to
// ptrace the target).
func ReadPersonality(pid int) (uint32, error) {
	b, err := readFile(pid, "personality")
	if err != nil {
		return 0, err
	}
	v, err := ParsePersonality(b)
	if err != nil {
		return 0, wrapErr(pid, "read personality", err)
	}
	return v, nil
}

// ParsePersonality parses the hexadecimal personality(2) value.
func ParsePersonality(b []byte) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse personality: %w", err)
	}
	return uint32(v), nil
}

// ReadCwd returns the target of /proc/PID/cwd.
func ReadCwd(pid int) (string, error) { return readLink(pid, "cwd") }

// ReadExe returns the target of /proc/PID/exe, which ends in " (deleted)" if
// the executable was unlinked. It fails with fs.ErrNotExist (wrapped) for a
// kernel thread.
func ReadExe(pid int) (string, error) { return readLink(pid, "exe") }

func readLink(pid int, name string) (string, error) {
	s, err := os.Readlink(procPath(pid, name))
	if err != nil {
		return "", wrapErr(pid, "read "+name+" link", err)
	}
	return s, nil
}

// Tasks returns the thread ids of pid (its /proc/PID/task directory), sorted.
func Tasks(pid int) ([]int, error) {
	names, err := readDirNames(procPath(pid, "task"))
	if err != nil {
		return nil, wrapErr(pid, "list tasks", err)
	}
	tids, err := parseIDs(names)
	if err != nil {
		return nil, wrapErr(pid, "list tasks", err)
	}
	return tids, nil
}

// Children returns the pids of the children of every thread of pid, from
// /proc/PID/task/*/children, sorted and without duplicates. The kernel
// documents the list as reliable only while the children cannot change
// (all threads of pid stopped); a thread that exits meanwhile is skipped.
func Children(pid int) ([]int, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	var kids []int
	for _, tid := range tids {
		b, err := readPath(procPath(pid, "task/"+strconv.Itoa(tid)+"/children"))
		if err != nil {
			if vanished(err) && !processGone(pid) && threadGone(pid, tid) {
				continue
			}
			return nil, wrapErr(pid, "read children", err)
		}
		ids, err := parseIDs(strings.Fields(string(b)))
		if err != nil {
			return nil, wrapErr(pid, fmt.Sprintf("read children of thread %d", tid), err)
		}
		kids = append(kids, ids...)
	}
	slices.Sort(kids)
	return slices.Compact(kids), nil
}

func threadGone(pid, tid int) bool {
	_, err := os.Lstat(procPath(pid, "task/"+strconv.Itoa(tid)))
	return err != nil && vanished(err)
}

// readDirNames lists a directory without sorting or stat-ing its entries.
func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// parseIDs parses decimal pids, tids or fds and sorts them.
func parseIDs(names []string) ([]int, error) {
	ids := make([]int, 0, len(names))
	for _, n := range names {
		id, err := strconv.Atoi(n)
		if err != nil || id < 0 {
			return nil, fmt.Errorf("bad id %q", n)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}
