//go:build linux

package loader

import (
	"github.com/crbpf/crbpf/internal/testutil"

	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkWriteFault measures what the tracker adds to a write fault of a
// tracked process (testdata/faults.c: fresh = missing-page faults on new
// anonymous memory; wp = userfaultfd async write-protect faults, what
// pre-copy arms). Tracker states:
//
//	none        no tracker loaded
//	untracked   tracker loaded, the process not added (what every other
//	            process on the host pays)
//	count       process added, faults counted only
//	emit        process added, one ring buffer event per fault, drained
//	            every 10 ms as the pre-copy loop does
//
// Reported: ns/fault, the median over rounds of the CPU time per faulting
// write inside the C program; ns/write-no-fault, the same loop once the pages
// are writable; and ns/bpf-run, the kernel's own accounting
// (kernel.bpf_stats_enabled) of page_fault_user's run time per run, over
// all faults on the machine during the run. Run with
//
//	go test -run '^$' -bench WriteFault -benchtime 5x ./loader/
func BenchmarkWriteFault(b *testing.B) {
	testutil.RequireRoot(b)
	bin := buildC(b, "faults")
	const pages, rounds = 16384, 9 // 64 MiB

	for _, mode := range []string{"fresh", "wp"} {
		for _, state := range []string{"none", "untracked", "count", "emit"} {
			b.Run(mode+"/"+state, func(b *testing.B) {
				var tr *Tracker
				var stats0 *ebpf.ProgramStats
				if state != "none" {
					tr = load(b, Options{EmitFaultEvents: state == "emit"})
					st, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
					if err != nil {
						b.Fatal(err)
					}
					defer st.Close()
					if stats0, err = tr.objs.PageFaultUser.Stats(); err != nil {
						b.Fatal(err)
					}
				}
				var sum, base float64
				for i := 0; i < b.N; i++ {
					tg := startTarget(b, bin, mode, fmt.Sprint(pages), fmt.Sprint(rounds))
					if state == "count" || state == "emit" {
						if err := tr.Add(tg.pid()); err != nil {
							b.Fatal(err)
						}
					}
					stop := make(chan struct{})
					var wg sync.WaitGroup
					if tr != nil {
						wg.Go(func() {
							tick := time.NewTicker(10 * time.Millisecond)
							defer tick.Stop()
							for {
								if _, err := tr.Poll(func(Event) {}); err != nil {
									b.Error(err)
									return
								}
								select {
								case <-stop:
									return
								case <-tick.C:
								}
							}
						})
					}
					tg.send(b, "go")
					l := tg.line(b)
					close(stop)
					wg.Wait()
					var ns, bl float64
					if _, err := fmt.Sscanf(l, "ns_per_page=%g baseline=%g", &ns, &bl); err != nil {
						b.Fatalf("faults said %q: %v", l, err)
					}
					sum += ns
					base += bl
					if tr != nil {
						tr.Remove(tg.pid())
					}
					tg.stdin.Close()
					tg.cmd.Wait()
				}
				if tr != nil {
					c, err := tr.Counters()
					if err != nil {
						b.Fatal(err)
					}
					if state == "count" && c.WriteFaultsUser < uint64(b.N*pages*rounds) {
						b.Errorf("WriteFaultsUser = %d, want >= %d", c.WriteFaultsUser, b.N*pages*rounds)
					}
					if c.Dropped != 0 {
						b.Errorf("Dropped = %d", c.Dropped)
					}
					st, err := tr.objs.PageFaultUser.Stats()
					if err != nil {
						b.Fatal(err)
					}
					if runs := st.RunCount - stats0.RunCount; runs > 0 {
						b.ReportMetric(float64(st.Runtime-stats0.Runtime)/float64(runs), "ns/bpf-run")
					}
				}
				b.ReportMetric(sum/float64(b.N), "ns/fault")
				b.ReportMetric(base/float64(b.N), "ns/write-no-fault")
			})
		}
	}
}

// BenchmarkSyscall measures what a loaded Tracker adds to a syscall that is
// none of the dozen it looks at (getppid; the sys_enter and sys_exit
// programs run on every syscall of every process while loaded), and to one
// it looks at (brk(0): an event at entry and at exit, and a state change):
//
//	none        no tracker loaded
//	idle        tracker loaded, no process added (programs not attached)
//	untracked   another process added, not this one (what every other
//	            process on the host pays while crbpf tracks one)
//	tracked     this process added
//
// Run with
//
//	go test -run '^$' -bench Syscall ./loader/
func BenchmarkSyscall(b *testing.B) {
	testutil.RequireRoot(b)
	for _, call := range []struct {
		name string
		nr   uintptr
	}{{"getppid", unix.SYS_GETPPID}, {"brk", unix.SYS_BRK}} {
		for _, state := range []string{"none", "idle", "untracked", "tracked"} {
			b.Run(call.name+"/"+state, func(b *testing.B) {
				if state != "none" {
					tr := load(b, Options{})
					if state == "untracked" {
						if err := tr.Add(unix.Getppid()); err != nil {
							b.Fatal(err)
						}
					}
					if state == "tracked" {
						if err := tr.Add(unix.Getpid()); err != nil {
							b.Fatal(err)
						}
						stop := make(chan struct{})
						defer close(stop)
						go func() { // keep the ring buffer from filling up
							for {
								select {
								case <-stop:
									return
								case <-time.After(10 * time.Millisecond):
									tr.Poll(func(Event) {})
								}
							}
						}()
					}
				}
				for b.Loop() {
					unix.RawSyscall(call.nr, 0, 0, 0)
				}
			})
		}
	}
}
