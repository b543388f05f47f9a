package checkpoint

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/internal/testutil"
	"github.com/crbpf/crbpf/procfs"
	"github.com/crbpf/crbpf/ptrace"
	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary a tracer of another process (a test's
// targets are children the os/exec reaper waits for, which would take the
// tracer's ptrace stops): see tracerHelper.
const helperEnv = "CRBPF_TEST_TRACER"

func TestMain(m *testing.M) {
	if arg := os.Getenv(helperEnv); arg != "" {
		if err := tracerHelper(arg); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// tracerHelper ("MODE PID") stops PID as a checkpoint does and injects two
// calls. Mode "inject" then resumes the task and prints "ok". Modes "die"
// and "die-vdso" print "injected" with how they
// injected and wait to be killed, leaving the task at the last call's
// syscall-exit stop with the injected registers and all signals blocked;
// "die-vdso" forgoes the lifeline. Mode "end" ends the injection, checks
// that registers, mask and the stack under the red zone are as they were,
// resumes the task and prints "ok". Mode "state" reads the task state
// checkpoints inject for and prints part of it (injectAndPrintState).
func tracerHelper(arg string) error {
	f := strings.Fields(arg)
	if len(f) != 2 {
		return fmt.Errorf("%s=%q: want MODE PID", helperEnv, arg)
	}
	mode := f[0]
	pid, err := strconv.Atoi(f[1])
	if err != nil {
		return err
	}
	tr := ptrace.NewTracer()
	return tr.Do(func() error {
		k, err := prepare(pid)
		if err != nil {
			return err
		}
		if mode == "die-vdso" {
			k.life = ptrace.Lifeline{}
		} else if !k.life.Complete() {
			return fmt.Errorf("no lifeline found in the target (a glibc program)")
		}
		s, err := stop(pid, k)
		if err != nil {
			return err
		}
		defer s.resume()
		if mode == "state" {
			return injectAndPrintState(s)
		}
		below := make([]byte, 16<<10)
		at := s.regs.Rsp - ptrace.RedZone - uint64(len(below))
		if _, err := ptrace.ReadMem(pid, at, below); err != nil {
			return err
		}
		in, err := s.injector()
		if err != nil {
			return err
		}
		if mode != "die-vdso" && (in.SP < at || in.SP >= s.regs.Rsp-ptrace.RedZone) {
			return fmt.Errorf("injector stack pointer %#x, want a frame in [%#x, %#x)", in.SP, at, s.regs.Rsp-ptrace.RedZone)
		}
		if got, err := in.Call("getpid", unix.SYS_GETPID); err != nil || int(got) != pid {
			return fmt.Errorf("injected getpid: %d, %v", got, err)
		}
		if _, err := in.Call("brk(0)", unix.SYS_BRK, 0); err != nil {
			return err
		}
		switch mode {
		case "inject":
			if err := s.resume(); err != nil {
				return err
			}
			fmt.Println("ok")
			return nil
		case "die", "die-vdso":
			fmt.Printf("injected sp=%#x ip=%#x\n", in.SP, in.SyscallIP)
			time.Sleep(time.Hour) // until killed (a pending timer keeps the deadlock detector quiet)
		case "die-prepared", "die-unprepared":
			// An fd the task must not keep, as the arming stop's
			// userfaultfd, with (or without) its close prepared.
			fd, err := in.Call("dup(0)", unix.SYS_DUP, 0)
			if err != nil {
				return err
			}
			if mode == "die-prepared" {
				if err := in.Prepare(unix.SYS_CLOSE, fd); err != nil {
					return err
				}
			}
			fmt.Printf("injected fd=%d\n", fd)
			time.Sleep(time.Hour)
		}
		if err := s.endInjection(); err != nil {
			return err
		}
		after := make([]byte, len(below))
		if _, err := ptrace.ReadMem(pid, at, after); err != nil {
			return err
		}
		if !bytes.Equal(after, below) {
			return fmt.Errorf("the stack under the red zone differs after the injection")
		}
		regs, err := s.task.Regs()
		if err != nil {
			return err
		}
		mask, err := s.task.SigMask()
		if err != nil {
			return err
		}
		if regs != s.regs || mask != s.mask {
			return fmt.Errorf("after the injection: regs %+v mask %#x, want %+v %#x", regs, mask, s.regs, s.mask)
		}
		fmt.Println("ok")
		return nil
	})
}

// startHelper runs tracerHelper in a new process and returns it with the
// first line it printed.
func startHelper(t *testing.T, mode string, pid int) (*exec.Cmd, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", helperEnv, mode, pid))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("tracer helper (%s): %q, %v", mode, line, err)
	}
	return cmd, strings.TrimSpace(line)
}

// TestLifeline kills a tracer between two injected calls (SIGKILL, as when
// crbpf is killed in the arming stop) and checks that the target returns to
// where it was stopped with every register, its FPU/AVX state, signal mask
// and alternate signal stack as they were. Without the lifeline (the [vdso]
// `syscall`) the same death must break the target: else this test could not
// tell.
func TestLifeline(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildC(t, "testdata/lifeline.c", "-mavx2")
	for _, mode := range []string{"lifeline", "vdso"} {
		t.Run(mode, func(t *testing.T) {
			tg := testutil.StartTarget(t, bin)
			tg.WaitLine(t, "ready", testutil.DefaultTimeout)

			helper := "die"
			if mode == "vdso" {
				helper = "die-vdso"
			}
			cmd, line := startHelper(t, helper, tg.PID)
			if !strings.HasPrefix(line, "injected") {
				t.Fatalf("tracer helper: %s", line)
			}
			t.Logf("tracer helper: %s", line)
			// TracerPid is the tracing thread.
			st, err := testutil.Status(tg.PID)
			if err != nil {
				t.Fatal(err)
			}
			tracer, err := testutil.Status(atoi(t, st["TracerPid"]))
			if err != nil || tracer["Tgid"] != strconv.Itoa(cmd.Process.Pid) {
				t.Fatalf("target's tracer is thread %s of %q (err %v), want the helper %d", st["TracerPid"], tracer["Tgid"], err, cmd.Process.Pid)
			}

			cmd.Process.Kill()
			cmd.Wait()
			// Pending until the target's mask is its own again. Without a
			// lifeline the target may be gone already.
			if err := unix.Kill(tg.PID, unix.SIGTERM); err != nil && mode != "vdso" {
				t.Fatal(err)
			}
			if mode == "vdso" {
				// Broken one way or another: killed, a register check
				// failing, or spinning on with SIGTERM blocked.
				deadline := time.Now().Add(2 * time.Second)
				for !tg.Exited() && time.Now().Before(deadline) {
					time.Sleep(10 * time.Millisecond)
				}
				if !tg.Exited() {
					t.Logf("without a lifeline: the target did not end\n%s", tg.Log())
				} else if code := tg.Wait(t, testutil.DefaultTimeout); code == 0 {
					t.Fatalf("the target survived a tracer dying without a lifeline; this test cannot see a broken one\n%s", tg.Log())
				} else {
					t.Logf("without a lifeline: the target exited %d\n%s", code, tg.Log())
				}
				return
			}
			code := tg.Wait(t, testutil.DefaultTimeout)
			if code != 0 {
				t.Fatalf("target exited %d after its tracer died mid-injection\n%s", code, tg.Log())
			}
		})
	}
}

// TestInjectionLeavesStack injects through the lifeline, ends the injection
// and checks (in the tracer) that the target's registers, mask and the stack
// under its red zone, where the frame was, are as they were at the stop;
// then that the target runs on and passes its own checks.
func TestInjectionLeavesStack(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildC(t, "testdata/lifeline.c", "-mavx2")
	tg := testutil.StartTarget(t, bin)
	tg.WaitLine(t, "ready", testutil.DefaultTimeout)
	cmd, line := startHelper(t, "end", tg.PID)
	if line != "ok" {
		t.Fatalf("tracer helper: %s", line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tracer helper: %v", err)
	}
	tg.Signal(t, unix.SIGTERM)
	if code := tg.Wait(t, testutil.DefaultTimeout); code != 0 {
		t.Fatalf("target exited %d after the injection\n%s", code, tg.Log())
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRseqAbort stops a target inside an rseq critical section, injects
// calls and resumes it, normally and by the lifeline after the tracer's
// death: it must resume at the section's abort handler, as from a
// preemption. Resumed in the middle of the section instead, it finds that
// the kernel cleared its rseq_cs pointer during the injected calls (their
// returns were outside the section), so no later preemption would abort it.
func TestRseqAbort(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildC(t, "testdata/rseqcs.c")
	for _, mode := range []string{"inject", "die"} {
		t.Run(mode, func(t *testing.T) {
			tg := testutil.StartTarget(t, bin)
			tg.WaitLine(t, "ready", testutil.DefaultTimeout)
			cmd, line := startHelper(t, mode, tg.PID)
			if !strings.HasPrefix(line, "ok") && !strings.HasPrefix(line, "injected") {
				t.Fatalf("tracer helper: %s", line)
			}
			cmd.Process.Kill()
			cmd.Wait()
			// Resumed mid-section, it says so at once and exits.
			unix.Kill(tg.PID, unix.SIGUSR1)
			if got := tg.NextLine(t, testutil.DefaultTimeout); got != "completed" {
				t.Fatalf("target: %q, want completed\n%s", got, tg.Log())
			}
			if code := tg.Wait(t, testutil.DefaultTimeout); code != 0 {
				t.Fatalf("target exited %d\n%s", code, tg.Log())
			}
		})
	}
}

// TestLifelineInSyscall is TestLifeline for targets stopped inside a
// blocking call, which the lifeline's return must restart: a read (which
// asks for a plain restart) and a sleep (restart_syscall, which continues
// it).
func TestLifelineInSyscall(t *testing.T) {
	testutil.RequireRoot(t)
	t.Run("read", func(t *testing.T) {
		tg := testutil.StartTarget(t, "cat")
		testutil.WaitBlocked(t, tg.PID, unix.SYS_READ, testutil.DefaultTimeout)
		killHelperMidInjection(t, tg.PID)
		tg.WriteStdin(t, "still here\n")
		if got := tg.NextLine(t, testutil.DefaultTimeout); got != "still here" {
			t.Fatalf("cat wrote %q after its tracer died mid-injection\n%s", got, tg.Log())
		}
	})
	t.Run("sleep", func(t *testing.T) {
		tg := testutil.StartTarget(t, "sleep", "1")
		testutil.WaitBlocked(t, tg.PID, unix.SYS_CLOCK_NANOSLEEP, testutil.DefaultTimeout)
		killHelperMidInjection(t, tg.PID)
		if code := tg.Wait(t, testutil.DefaultTimeout); code != 0 {
			t.Fatalf("sleep exited %d after its tracer died mid-injection\n%s", code, tg.Log())
		}
	})
}

// TestLifelinePrepared: a call prepared (Injector.Prepare) when the tracer
// dies is made by the task itself before its lifeline returns it: the fd
// an injected call opened is closed, as armTracking relies on. Without the
// prepared close the task keeps it (the test can tell).
func TestLifelinePrepared(t *testing.T) {
	testutil.RequireRoot(t)
	for _, mode := range []string{"die-prepared", "die-unprepared"} {
		t.Run(mode, func(t *testing.T) {
			tg := testutil.StartTarget(t, "cat")
			testutil.WaitBlocked(t, tg.PID, unix.SYS_READ, testutil.DefaultTimeout)
			cmd, line := startHelper(t, mode, tg.PID)
			fdText, ok := strings.CutPrefix(line, "injected fd=")
			if !ok {
				t.Fatalf("tracer helper: %s", line)
			}
			link := fmt.Sprintf("/proc/%d/fd/%s", tg.PID, fdText)
			if _, err := os.Readlink(link); err != nil {
				t.Fatalf("the injected dup: %v", err)
			}
			cmd.Process.Kill()
			cmd.Wait()
			// Once cat echoes a line it runs its own code again.
			tg.WriteStdin(t, "still here\n")
			if got := tg.NextLine(t, testutil.DefaultTimeout); got != "still here" {
				t.Fatalf("cat wrote %q after its tracer died mid-injection\n%s", got, tg.Log())
			}
			_, err := os.Readlink(link)
			if kept := err == nil; kept != (mode == "die-unprepared") {
				t.Errorf("fd %s kept by the task after its tracer died: %v (%v)", fdText, kept, err)
			}
		})
	}
}

// killHelperMidInjection runs tracerHelper "die" on pid and kills it
// between its injected calls.
func killHelperMidInjection(t *testing.T, pid int) {
	t.Helper()
	cmd, line := startHelper(t, "die", pid)
	if !strings.HasPrefix(line, "injected") {
		t.Fatalf("tracer helper: %s", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
}

// injectAndPrintState reads the stopped task's state as a checkpoint does
// and prints "stack=BYTES lifeline=BOOL altstack=SIZE handlers=N".
func injectAndPrintState(s *stopped) error {
	status, err := procfs.ReadStatus(s.pid)
	if err != nil {
		return err
	}
	st, err := injectState(s, status)
	if err != nil {
		return err
	}
	fmt.Printf("stack=%d lifeline=%v altstack=%d handlers=%d\n", len(s.under), s.in.SP != 0,
		st.task.SigAltStack.Size, len(st.task.SigActions))
	return s.endInjection()
}

// TestInjectOnTinyStack reads the state of a target that runs on a stack
// with no room under its stack pointer: the injected calls go without a
// lifeline and write into a page mapped for them, which is gone again
// after.
func TestInjectOnTinyStack(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.BuildC(t, "testdata/tinystack.c")
	tg := testutil.StartTarget(t, bin)
	tg.WaitLine(t, "ready", testutil.DefaultTimeout)
	before, err := procfs.ReadMaps(tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	cmd, line := startHelper(t, "state", tg.PID)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tracer helper: %s: %v", line, err)
	}
	if want := "stack=0 lifeline=false altstack=65536 handlers=1"; line != want {
		t.Errorf("tracer helper: %q, want %q", line, want)
	}
	after, err := procfs.ReadMaps(tg.PID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("the target has %d mappings after the injection, %d before", len(after), len(before))
	}
	tg.Signal(t, unix.SIGTERM)
	if got := tg.NextLine(t, testutil.DefaultTimeout); got != "ok" {
		t.Fatalf("target: %q, want ok\n%s", got, tg.Log())
	}
	if code := tg.Wait(t, testutil.DefaultTimeout); code != 0 {
		t.Fatalf("target exited %d\n%s", code, tg.Log())
	}
}
