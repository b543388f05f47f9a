package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/crbpf/crbpf/image"

	"github.com/crbpf/crbpf/internal/testutil"
	"golang.org/x/sys/unix"
)

// BenchmarkCheckpointRestart1GiB checkpoints a process holding 1 GiB of
// patterned (non-zero) anonymous memory into tmpfs and restarts it, and
// reports medians over the iterations: the time the target was frozen by a
// full-freeze checkpoint (--precopy 0) and
// the time restart took, with the resulting GB/s. The restored copy
// verifies its memory each time. Run with:
//
//	go test -run '^$' -bench CheckpointRestart1GiB -benchtime 5x ./e2e/
func BenchmarkCheckpointRestart1GiB(b *testing.B) {
	testutil.RequireRoot(b)
	const mib = 1024
	shm, err := os.MkdirTemp("/dev/shm", "crbpf-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(shm) })
	orig := testutil.StartTarget(b, target(b, "memcheck"), strconv.Itoa(mib), b.TempDir())
	orig.WaitLine(b, "READY", 5*timeout)

	var freeze, restore, gbCkpt, gbRestore, floor []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		img := filepath.Join(shm, fmt.Sprintf("img-%d", i))
		cp := checkpoint(b, orig.PID, img, "--precopy", "0") // the full-freeze path: frozen while all is copied
		r := testutil.StartCrbpf(b, "restart", "--detach", "--json", img)
		js := r.WaitLine(b, "{", 5*timeout)
		var out struct {
			PID            int     `json:"pid"`
			RestoreSeconds float64 `json:"restore_seconds"`
		}
		if err := json.Unmarshal([]byte(js), &out); err != nil {
			b.Fatalf("restart output %q: %v", js, err)
		}
		testutil.Adopt(b, out.PID)
		r.Wait(b, timeout)
		unix.Kill(out.PID, unix.SIGUSR1)
		r.WaitLineMatch(b, verifyOK, 5*timeout)
		unix.Kill(out.PID, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(out.PID, &ws, 0, nil)
		floor = append(floor, fillFloor(b, filepath.Join(img, image.PagesFile), cp.BytesWritten))
		os.RemoveAll(img)

		gb := float64(cp.BytesWritten) / 1e9
		freeze = append(freeze, cp.FreezeSeconds)
		restore = append(restore, out.RestoreSeconds)
		gbCkpt = append(gbCkpt, gb/cp.FreezeSeconds)
		gbRestore = append(gbRestore, gb/out.RestoreSeconds)
	}
	b.StopTimer()
	b.ReportMetric(median(freeze)*1e3, "freeze-ms")
	b.ReportMetric(median(gbCkpt), "ckpt-GB/s")
	b.ReportMetric(median(restore)*1e3, "restore-ms")
	b.ReportMetric(median(gbRestore), "restore-GB/s")
	b.ReportMetric(median(floor)*1e3, "floor-ms")
	b.ReportMetric(median(restore)/median(floor), "restore/floor")
	b.Logf("freeze s %v; restore s %v; floor s %v", freeze, restore, floor)
}

// fillFloor measures this machine's floor for a restore of n bytes: the
// time a process needs to get n bytes of fresh anonymous memory (prefaulted
// as restore does) and read the image's pages into it, with no ptrace or
// injection at all. It returns seconds.
func fillFloor(b *testing.B, pages string, n uint64) float64 {
	f, err := os.Open(pages)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	t0 := time.Now()
	mem, err := unix.Mmap(-1, 0, int(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	if err := unix.Madvise(mem, unix.MADV_POPULATE_WRITE); err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(mem); {
		got, err := f.ReadAt(mem[off:], int64(off))
		off += got
		if err != nil {
			break
		}
	}
	return time.Since(t0).Seconds()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
