package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// PF_KTHREAD is the task flag of kernel threads (include/linux/sched.h).
const PF_KTHREAD = 0x00200000

// Stat is /proc/PID/stat. Field numbers in comments are those of proc(5).
//
// The kernel prints StartCode, EndCode and StartStack as 1, and StartData
// through ExitCode as 0, to readers that may not ptrace the target; all of
// them are 0 for a task without an address space (kernel thread, zombie).
type Stat struct {
	Pid        int    // (1)
	Comm       string // (2) raw, without the parentheses
	State      byte   // (3) R, S, D, T, t, Z, X, I, ...
	PPid       int    // (4)
	Pgrp       int    // (5)
	Session    int    // (6)
	TTYNr      int    // (7)
	TPGid      int    // (8) -1 without a controlling terminal
	Flags      uint64 // (9) PF_* flags
	MinFlt     uint64 // (10)
	CMinFlt    uint64 // (11)
	MajFlt     uint64 // (12)
	CMajFlt    uint64 // (13)
	UTime      uint64 // (14) clock ticks
	STime      uint64 // (15)
	CUTime     int64  // (16)
	CSTime     int64  // (17)
	Priority   int64  // (18)
	Nice       int64  // (19)
	NumThreads int    // (20)
	StartTime  uint64 // (22) clock ticks after boot
	VSize      uint64 // (23) bytes
	RSS        int64  // (24) pages
	RSSLim     uint64 // (25)
	StartCode  uint64 // (26)
	EndCode    uint64 // (27)
	StartStack uint64 // (28)
	ExitSignal int    // (38)
	Processor  int    // (39)
	RTPriority uint32 // (40)
	Policy     uint32 // (41)
	StartData  uint64 // (45)
	EndData    uint64 // (46)
	StartBrk   uint64 // (47)
	ArgStart   uint64 // (48)
	ArgEnd     uint64 // (49)
	EnvStart   uint64 // (50)
	EnvEnd     uint64 // (51)
	ExitCode   int    // (52) as waitpid(2) would report it
}

// statFields is the number of fields since Linux 3.5 (exit_code).
const statFields = 52

// IsKernelThread reports whether the task is a kernel thread (PF_KTHREAD).
func (s *Stat) IsKernelThread() bool { return s.Flags&PF_KTHREAD != 0 }

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (*Stat, error) { return readStat(pid, "stat") }

// ReadTaskStat reads /proc/PID/task/TID/stat: one thread's state and the
// CPU it last ran on (State, Processor), where /proc/PID/stat has the
// thread group leader's.
func ReadTaskStat(pid, tid int) (*Stat, error) {
	return readStat(pid, "task/"+strconv.Itoa(tid)+"/stat")
}

// readStat reads and parses a stat file of pid's /proc directory.
func readStat(pid int, name string) (*Stat, error) {
	b, err := readFile(pid, name)
	if err != nil {
		return nil, err
	}
	s, err := ParseStat(b)
	if err != nil {
		return nil, wrapErr(pid, "read "+name, err)
	}
	return s, nil
}

// ParseStat parses the contents of /proc/PID/stat (or /proc/PID/task/TID/stat).
// comm is taken between the first '(' and the last ')', so it may contain
// anything, including ") (" and newlines. Fields beyond the 52 known ones are
// ignored.
func ParseStat(b []byte) (*Stat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return nil, fmt.Errorf("parse stat: comm not in parentheses")
	}
	pidField := strings.TrimSpace(string(b[:open]))
	rest := strings.Fields(string(b[closing+1:]))
	if got := len(rest) + 2; got < statFields {
		return nil, fmt.Errorf("parse stat: %d fields, want at least %d", got, statFields)
	}
	s := &Stat{Comm: string(b[open+1 : closing])}
	var p fieldParser
	// u and i parse field n of proc(5) (n >= 3) as a bits-wide integer.
	u := func(n, bits int) uint64 { return p.uint("field "+strconv.Itoa(n), rest[n-3], 10, bits) }
	i := func(n, bits int) int64 { return p.int("field "+strconv.Itoa(n), rest[n-3], 10, bits) }

	s.Pid = int(p.int("pid", pidField, 10, 32))
	if st := rest[0]; len(st) != 1 {
		return nil, fmt.Errorf("parse stat: state %q: want one character", st)
	}
	s.State = rest[0][0]
	s.PPid = int(i(4, 32))
	s.Pgrp = int(i(5, 32))
	s.Session = int(i(6, 32))
	s.TTYNr = int(i(7, 32))
	s.TPGid = int(i(8, 32))
	s.Flags = u(9, 64)
	s.MinFlt = u(10, 64)
	s.CMinFlt = u(11, 64)
	s.MajFlt = u(12, 64)
	s.CMajFlt = u(13, 64)
	s.UTime = u(14, 64)
	s.STime = u(15, 64)
	s.CUTime = i(16, 64)
	s.CSTime = i(17, 64)
	s.Priority = i(18, 64)
	s.Nice = i(19, 64)
	s.NumThreads = int(i(20, 32))
	s.StartTime = u(22, 64)
	s.VSize = u(23, 64)
	s.RSS = i(24, 64)
	s.RSSLim = u(25, 64)
	s.StartCode = u(26, 64)
	s.EndCode = u(27, 64)
	s.StartStack = u(28, 64)
	s.ExitSignal = int(i(38, 32))
	s.Processor = int(i(39, 32))
	s.RTPriority = uint32(u(40, 32))
	s.Policy = uint32(u(41, 32))
	s.StartData = u(45, 64)
	s.EndData = u(46, 64)
	s.StartBrk = u(47, 64)
	s.ArgStart = u(48, 64)
	s.ArgEnd = u(49, 64)
	s.EnvStart = u(50, 64)
	s.EnvEnd = u(51, 64)
	s.ExitCode = int(i(52, 32))
	if p.err != nil {
		return nil, fmt.Errorf("parse stat: %w", p.err)
	}
	return s, nil
}
