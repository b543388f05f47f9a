package procfs

import (
	"fmt"
	"slices"
	"strings"
)

// Status is the subset of /proc/PID/status crbpf uses. Pids are as seen from
// the pid namespace of the procfs mount; NStgid and NSpid list them from the
// outermost to the innermost namespace.
type Status struct {
	Name      string // comm, unescaped
	Umask     uint32
	HasUmask  bool // the kernel printed a Umask line (since 4.7)
	State     byte // R, S, D, T, t, Z, X, I, ...
	Tgid      int
	Pid       int
	PPid      int
	TracerPid int
	Uid       [4]int // real, effective, saved, filesystem
	Gid       [4]int
	FDSize    int
	Groups    []int
	NStgid    []int
	NSpid     []int
	NSpgid    []int
	NSsid     []int
	Threads   int

	SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt uint64 // bit N-1 is signal N
	CapInh, CapPrm, CapEff, CapBnd, CapAmb uint64

	// RssAnon and RssShmem are resident anonymous and shared-memory bytes
	// (0 for kernel threads, which print no memory lines).
	RssAnon, RssShmem uint64
	// VmSwap is the bytes of the process's memory in swap.
	VmSwap uint64

	NoNewPrivs     int
	Seccomp        int // SECCOMP_MODE_*; 0 also when the kernel lacks seccomp
	SeccompFilters int
}

// requiredStatus are the keys every supported kernel prints; ParseStatus
// fails without them rather than report a zero uid or signal mask.
var requiredStatus = []string{
	"Name", "State", "Tgid", "Pid", "PPid", "TracerPid", "Uid", "Gid", "Threads",
	"SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "CapEff",
}

// ReadStatus reads /proc/PID/status.
func ReadStatus(pid int) (*Status, error) {
	b, err := readFile(pid, "status")
	if err != nil {
		return nil, err
	}
	s, err := ParseStatus(b)
	if err != nil {
		return nil, wrapErr(pid, "read status", err)
	}
	return s, nil
}

// ReadTracerPid returns the pid of the process ptracing pid, or 0.
func ReadTracerPid(pid int) (int, error) {
	s, err := ReadStatus(pid)
	if err != nil {
		return 0, err
	}
	return s.TracerPid, nil
}

// ParseStatus parses the contents of /proc/PID/status. Lines are "Key:"
// followed by a tab and the value; unknown keys and empty lines are ignored,
// and for a repeated key the last line wins.
func ParseStatus(b []byte) (*Status, error) {
	s := &Status{}
	// Which required keys appeared, by index in requiredStatus (a map of
	// every key costs more than the rest of the parse).
	seen := make([]bool, len(requiredStatus))
	var p fieldParser
	err := eachLineBytes(b, func(n int, raw []byte) error {
		if len(raw) == 0 {
			return nil
		}
		key, val, ok := strings.Cut(string(raw), ":")
		if !ok {
			return fmt.Errorf("line %d: no ':' in %q", n, raw)
		}
		if i := slices.Index(requiredStatus, key); i >= 0 {
			seen[i] = true
		}
		if key == "Name" {
			// The name is everything after the tab and may itself
			// begin or end with blanks.
			s.Name = unescapeName(strings.TrimPrefix(val, "\t"))
			return nil
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Umask":
			if val == "-1" { // no fs_struct
				s.Umask, s.HasUmask = 0, false
				break
			}
			s.Umask = uint32(p.uint(key, val, 8, 32))
			s.HasUmask = true
		case "State":
			if val == "" {
				return fmt.Errorf("line %d: empty State", n)
			}
			s.State = val[0]
		case "Tgid":
			s.Tgid = int(p.int(key, val, 10, 32))
		case "Pid":
			s.Pid = int(p.int(key, val, 10, 32))
		case "PPid":
			s.PPid = int(p.int(key, val, 10, 32))
		case "TracerPid":
			s.TracerPid = int(p.int(key, val, 10, 32))
		case "Uid", "Gid":
			ids := strings.Fields(val)
			if len(ids) != 4 {
				return fmt.Errorf("line %d: %s has %d ids, want 4", n, key, len(ids))
			}
			dst := &s.Uid
			if key == "Gid" {
				dst = &s.Gid
			}
			for i, id := range ids {
				dst[i] = int(p.uint(key, id, 10, 32))
			}
		case "FDSize":
			s.FDSize = int(p.int(key, val, 10, 32))
		case "Groups":
			s.Groups = p.ints(key, val)
		case "NStgid":
			s.NStgid = p.ints(key, val)
		case "NSpid":
			s.NSpid = p.ints(key, val)
		case "NSpgid":
			s.NSpgid = p.ints(key, val)
		case "NSsid":
			s.NSsid = p.ints(key, val)
		case "Threads":
			s.Threads = int(p.int(key, val, 10, 32))
		case "SigPnd":
			s.SigPnd = p.uint(key, val, 16, 64)
		case "ShdPnd":
			s.ShdPnd = p.uint(key, val, 16, 64)
		case "SigBlk":
			s.SigBlk = p.uint(key, val, 16, 64)
		case "SigIgn":
			s.SigIgn = p.uint(key, val, 16, 64)
		case "SigCgt":
			s.SigCgt = p.uint(key, val, 16, 64)
		case "CapInh":
			s.CapInh = p.uint(key, val, 16, 64)
		case "CapPrm":
			s.CapPrm = p.uint(key, val, 16, 64)
		case "CapEff":
			s.CapEff = p.uint(key, val, 16, 64)
		case "CapBnd":
			s.CapBnd = p.uint(key, val, 16, 64)
		case "CapAmb":
			s.CapAmb = p.uint(key, val, 16, 64)
		case "RssAnon", "RssShmem", "VmSwap":
			kb, ok := strings.CutSuffix(val, " kB")
			if !ok {
				return fmt.Errorf("line %d: %s %q not in kB", n, key, val)
			}
			v := p.uint(key, strings.TrimSpace(kb), 10, 54) * 1024
			switch key {
			case "RssAnon":
				s.RssAnon = v
			case "RssShmem":
				s.RssShmem = v
			default:
				s.VmSwap = v
			}
		case "NoNewPrivs":
			s.NoNewPrivs = int(p.int(key, val, 10, 32))
		case "Seccomp":
			s.Seccomp = int(p.int(key, val, 10, 32))
		case "Seccomp_filters":
			s.SeccompFilters = int(p.int(key, val, 10, 32))
		}
		if p.err != nil {
			return fmt.Errorf("line %d: %w", n, p.err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("parse status: %w", err)
	}
	for i, k := range requiredStatus {
		if !seen[i] {
			return nil, fmt.Errorf("parse status: no %s line", k)
		}
	}
	return s, nil
}

// unescapeName undoes the escaping of the Name line, where the kernel
// writes '\n' as `\n` and '\\' as `\\` and leaves every other byte as is.
func unescapeName(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
