package ptrace_test

import (
	"bytes"
	"os/exec"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"golang.org/x/sys/unix"
)

func TestFixRestart(t *testing.T) {
	neg := func(n int64) uint64 { return uint64(-n) }
	tests := []struct {
		name             string
		rax, orig, rip   uint64
		same             bool
		wantRax, wantRip uint64
	}{
		{"not in syscall", 7, ^uint64(0), 100, true, 7, 100},
		{"ERESTARTSYS", neg(512), 0, 100, false, 0, 98},
		{"ERESTARTNOINTR", neg(513), 61, 100, true, 61, 98},
		{"ERESTARTNOHAND", neg(514), 34, 100, false, 34, 98},
		{"restart block, same task", neg(516), 230, 100, true, 219, 98},
		{"restart block, new process", neg(516), 230, 100, false, 230, 98},
		{"EINTR is final", neg(4), 35, 100, true, neg(4), 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := unix.PtraceRegs{Rax: tc.rax, Orig_rax: tc.orig, Rip: tc.rip}
			ptrace.FixRestart(&r, tc.same)
			if r.Rax != tc.wantRax || r.Rip != tc.wantRip || r.Orig_rax != ^uint64(0) {
				t.Fatalf("got rax=%d rip=%d orig=%#x, want rax=%d rip=%d orig=-1", int64(r.Rax), r.Rip, r.Orig_rax, int64(tc.wantRax), tc.wantRip)
			}
		})
	}
}

// TestInjectIntoSleeper stops a process blocked in nanosleep, injects
// getpid through the syscall instruction of its vDSO, puts it back and
// checks that it still runs and completes its sleep normally.
func TestInjectIntoSleeper(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command("sleep", "0.5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitState(t, pid, 'S')

	tr := ptrace.NewTracer()
	defer tr.Close()
	err := tr.Do(func() error {
		task, err := ptrace.Seize(pid, unix.PTRACE_O_TRACESYSGOOD)
		if err != nil {
			return err
		}
		if err := task.Interrupt(); err != nil {
			return err
		}
		for {
			st, err := task.Wait()
			if err != nil {
				return err
			}
			if st.IsEventStop() {
				break
			}
			task.Cont(st.Sig())
		}
		regs, err := task.Regs()
		if err != nil {
			return err
		}
		if int64(regs.Rax) != -516 {
			t.Errorf("sleeper stopped with rax %d, want -516 (ERESTART_RESTARTBLOCK)", int64(regs.Rax))
		}
		// The XSAVE area, read into a new buffer and into the caller's.
		xs, err := task.Regset(unix.NT_X86_XSTATE, nil)
		if err != nil {
			return err
		}
		buf := make([]byte, ptrace.MaxRegsetSize)
		xs2, err := task.Regset(unix.NT_X86_XSTATE, buf)
		if err != nil {
			return err
		}
		if len(xs) < 512+64 || !bytes.Equal(xs, xs2) || &xs2[0] != &buf[0] {
			t.Errorf("XSAVE area of %d bytes, %d read into the caller's buffer (in it: %v); want the same, at least the legacy area and header",
				len(xs), len(xs2), &xs2[0] == &buf[0])
		}
		ip := vdsoSyscall(t, pid)
		in := &ptrace.Injector{Task: task, SyscallIP: ip, Base: regs}
		got, err := in.Call("getpid", unix.SYS_GETPID)
		if err != nil {
			return err
		}
		if int(got) != pid {
			t.Errorf("injected getpid returned %d, want %d", got, pid)
		}
		if _, err := in.Call("bad fd", unix.SYS_CLOSE, 1<<20); err == nil {
			t.Errorf("close of a bad fd did not fail")
		}
		ptrace.FixRestart(&regs, true)
		if err := task.SetRegs(regs); err != nil {
			return err
		}
		return task.Detach()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sleeper did not finish normally after injection: %v", err)
	}
}

func waitState(t *testing.T, pid int, want byte) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		st, err := procfs.ReadStat(pid)
		if err == nil && st.State == want {
			return
		}
		unix.Nanosleep(&unix.Timespec{Nsec: 5e6}, nil)
	}
	t.Fatalf("pid %d never reached state %c", pid, want)
}

func vdsoSyscall(t *testing.T, pid int) uint64 {
	t.Helper()
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Name == "[vdso]" {
			buf := make([]byte, m.Len())
			if _, err := ptrace.ReadMem(pid, m.Start, buf); err != nil {
				t.Fatal(err)
			}
			if i := bytes.Index(buf, []byte{0x0f, 0x05}); i >= 0 {
				return m.Start + uint64(i)
			}
		}
	}
	t.Fatal("no syscall instruction in [vdso]")
	return 0
}
