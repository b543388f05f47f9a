package sched

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

func nices(t *testing.T) map[int]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err == nil {
			out[tid] = 20 - p
		}
	}
	return out
}

func TestYield(t *testing.T) {
	before := nices(t)
	restore := Yield()
	for tid, n := range nices(t) {
		if n != 19 {
			t.Errorf("thread %d at nice %d after Yield, want 19", tid, n)
		}
	}
	restore()
	after := nices(t)
	for tid, n := range before {
		if m, ok := after[tid]; ok && m != n {
			t.Errorf("thread %d at nice %d after restore, was %d", tid, m, n)
		}
	}
}
