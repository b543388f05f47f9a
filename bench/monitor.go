package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The machine may be shared: CPU time used by processes that are not the
// benchmark, its target or crbpf shows up as noise in every figure, so it
// is measured and reported, and a repetition waits (a bounded time) for it
// to drop.

// cpuSample is the machine's busy CPU time and the part of it the
// benchmark's own process tree used, in clock ticks (USER_HZ, 100/s).
type cpuSample struct {
	at         time.Time
	busy, mine uint64
}

// foreignPercent is the CPU used by other processes between a and b, in
// percent of one CPU.
func foreignPercent(a, b cpuSample) float64 {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 || b.busy < a.busy {
		return 0
	}
	other := float64(b.busy-a.busy) - float64(b.mine-a.mine)
	return max(0, other/100/secs*100)
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		// cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f[1:] {
			if i == 3 || i == 4 || i >= 8 {
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			s.busy += n
		}
	}
	self := os.Getpid()
	if st, ok := procStat(self); ok {
		s.mine += st.utime + st.stime + st.cutime + st.cstime
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if st, ok := procStat(pid); ok && st.ppid == self {
			s.mine += st.utime + st.stime + st.cutime + st.cstime
		}
	}
	return s
}

type statFields struct {
	comm                         string
	ppid                         int
	utime, stime, cutime, cstime uint64
}

func procStat(pid int) (statFields, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return statFields{}, false
	}
	i, j := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if i < 0 || j < i {
		return statFields{}, false
	}
	f := strings.Fields(string(b[j+1:]))
	if len(f) < 15 {
		return statFields{}, false
	}
	num := func(k int) uint64 { n, _ := strconv.ParseUint(f[k], 10, 64); return n }
	ppid, _ := strconv.Atoi(f[1])
	return statFields{comm: string(b[i+1 : j]), ppid: ppid, utime: num(11), stime: num(12), cutime: num(13), cstime: num(14)}, true
}

// stealTicks is the time the hypervisor kept this machine's vCPUs from
// running while they had work (steal, the eighth figure of the cpu line of
// /proc/stat), summed over the CPUs, in clock ticks (USER_HZ, 100/s); 0
// where the kernel does not account it.
func stealTicks() uint64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 {
		return 0
	}
	n, _ := strconv.ParseUint(f[8], 10, 64)
	return n
}

// waitQuiet waits until other processes use less than limit percent of
// one CPU over a second, or until wait has passed; it returns the last
// measurement.
func waitQuiet(ctx context.Context, limit float64, wait time.Duration) (float64, error) {
	deadline := time.Now().Add(wait)
	for {
		a := sampleCPU()
		if err := sleep(ctx, time.Second); err != nil {
			return 0, err
		}
		p := foreignPercent(a, sampleCPU())
		if p < limit || time.Now().After(deadline) {
			return p, nil
		}
		if err := sleep(ctx, 4*time.Second); err != nil {
			return p, err
		}
	}
}
