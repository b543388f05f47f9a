package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ProcStat is the part of /proc/PID/stat the tests look at.
type ProcStat struct {
	PID   int
	Comm  string
	State byte // R, S, D, Z, T (stopped), t (ptrace-stop), X, I
	PPID  int
}

// ReadStat parses /proc/PID/stat. The error wraps fs.ErrNotExist when the
// process is gone (and reaped).
func ReadStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcStat{}, err
	}
	return parseStat(string(b))
}

func parseStat(s string) (ProcStat, error) {
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return ProcStat{}, fmt.Errorf("malformed stat %q", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return ProcStat{}, fmt.Errorf("malformed stat %q", s)
	}
	rest := strings.Fields(s[close+1:])
	if len(rest) < 2 || len(rest[0]) != 1 {
		return ProcStat{}, fmt.Errorf("malformed stat %q", s)
	}
	ppid, err := strconv.Atoi(rest[1])
	if err != nil {
		return ProcStat{}, fmt.Errorf("malformed stat %q", s)
	}
	return ProcStat{PID: pid, Comm: s[open+1 : close], State: rest[0][0], PPID: ppid}, nil
}

// Status returns the "Key: value" lines of /proc/PID/status.
func Status(pid int) (map[string]string, error) {
	return readStatus(fmt.Sprintf("/proc/%d/status", pid))
}

func readStatus(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, sc.Err()
}

// Exists says whether /proc/PID exists (a zombie exists until reaped).
func Exists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// Alive says whether pid exists and is not a zombie.
func Alive(pid int) bool {
	st, err := ReadStat(pid)
	return err == nil && st.State != 'Z' && st.State != 'X'
}

// AllProcesses returns the stat of every process in /proc.
func AllProcesses() []ProcStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []ProcStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := ReadStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// Children returns the processes whose parent is ppid, sorted by PID.
func Children(ppid int) []ProcStat {
	var out []ProcStat
	for _, st := range AllProcesses() {
		if st.PPID == ppid {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}

// Descendants returns all processes below pid (children, grandchildren...).
func Descendants(pid int) []ProcStat {
	byParent := make(map[int][]ProcStat)
	for _, st := range AllProcesses() {
		byParent[st.PPID] = append(byParent[st.PPID], st)
	}
	var out []ProcStat
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range byParent[p] {
			out = append(out, c)
			queue = append(queue, c.PID)
		}
	}
	return out
}

// Tasks returns the thread IDs of pid.
func Tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// TaskState describes one thread for failure messages.
type TaskState struct {
	TID       int
	State     string // the State line of status, e.g. "S (sleeping)"
	TracerPid int
}

// TaskStates returns the state and tracer of every thread of pid.
func TaskStates(pid int) ([]TaskState, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	var out []TaskState
	for _, tid := range tids {
		m, err := readStatus(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		tp, _ := strconv.Atoi(m["TracerPid"])
		out = append(out, TaskState{TID: tid, State: m["State"], TracerPid: tp})
	}
	return out, nil
}

// RequireUntouched fails the test unless every thread of pid is alive, not
// stopped (T or t) and not traced.
func RequireUntouched(t testing.TB, pid int) {
	t.Helper()
	tasks, err := TaskStates(pid)
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	if len(tasks) == 0 {
		t.Fatalf("pid %d has no threads left", pid)
	}
	for _, ts := range tasks {
		if ts.TracerPid != 0 || strings.HasPrefix(ts.State, "t") || strings.HasPrefix(ts.State, "T") ||
			strings.HasPrefix(ts.State, "Z") || strings.HasPrefix(ts.State, "X") {
			t.Fatalf("pid %d thread %d was left in state %q with TracerPid %d", pid, ts.TID, ts.State, ts.TracerPid)
		}
	}
}

// SyscallNr returns the number of the system call pid is blocked in, from
// /proc/PID/syscall; ok is false while it runs in user space or is not
// blocked in a system call.
func SyscallNr(pid int) (nr int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 { // "running", or -1 (stopped outside a syscall)
		return 0, false
	}
	return n, true
}

// BlockedIn waits until pid sleeps (state S) inside a system call and
// returns that call's number. If wantNr >= 0 it waits for that call.
func BlockedIn(pid, wantNr int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := ReadStat(pid)
		if err != nil {
			return 0, fmt.Errorf("pid %d is gone while waiting for it to block in a system call: %w", pid, err)
		}
		if st.State == 'Z' || st.State == 'X' {
			return 0, fmt.Errorf("pid %d exited while waiting for it to block in a system call", pid)
		}
		nr, ok := SyscallNr(pid)
		if st.State == 'S' && ok && (wantNr < 0 || nr == wantNr) {
			return nr, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("pid %d did not block in system call %d within %v: state %c, syscall %d (in one: %v)",
				pid, wantNr, timeout, st.State, nr, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitBlocked is BlockedIn that fails the test on error.
func WaitBlocked(t testing.TB, pid, wantNr int, timeout time.Duration) int {
	t.Helper()
	nr, err := BlockedIn(pid, wantNr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return nr
}

// Fds returns fd number -> link target for pid.
func Fds(pid int) (map[int]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	m := make(map[int]string)
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		link, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		m[fd] = link
	}
	return m, nil
}

// Maps returns the lines of /proc/PID/maps.
func Maps(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n"), nil
}
