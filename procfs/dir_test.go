package procfs

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shell is a child sh that runs one command line at a time and answers
// "ok" once it has.
type shell struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startShell(t *testing.T) *shell {
	t.Helper()
	cmd := exec.Command("sh", "-c", `while read -r line; do eval "$line"; echo ok; done`)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sh: %v", err)
	}
	sh := &shell{cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sh.run(t, ":") // started and waiting, its address space settled
	return sh
}

// shellDir starts a shell and opens its Dir, closed when the test ends.
func shellDir(t *testing.T) (*shell, *Dir) {
	t.Helper()
	sh := startShell(t)
	d, err := OpenDir(sh.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return sh, d
}

func (s *shell) run(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		t.Fatalf("send %q: %v", line, err)
	}
	got, err := s.out.ReadString('\n')
	if err != nil || got != "ok\n" {
		t.Fatalf("%q answered %q, %v", line, got, err)
	}
}

// TestDirMatchesReadX checks that every Dir read gives what the ReadX
// function of the same file gives, read after read.
func TestDirMatchesReadX(t *testing.T) {
	sh, d := shellDir(t)
	pid := sh.cmd.Process.Pid
	if d.PID() != pid {
		t.Errorf("PID() = %d, want %d", d.PID(), pid)
	}
	reads := []struct {
		what       string
		dir, readX func() (any, error)
	}{
		{"maps", asAny(d.Maps), withPID(ReadMaps, pid)},
		{"auxv", asAny(d.Auxv), withPID(ReadAuxv, pid)},
		{"comm", asAny(d.Comm), withPID(ReadComm, pid)},
		{"personality", asAny(d.Personality), withPID(ReadPersonality, pid)},
		{"limits", asAny(d.Limits), withPID(ReadLimits, pid)},
		{"cwd", asAny(d.Cwd), withPID(ReadCwd, pid)},
		{"exe", asAny(d.Exe), withPID(ReadExe, pid)},
		{"fds", asAny(d.FDs), withPID(ReadFDs, pid)},
	}
	for round := range 3 { // the second and third reuse held descriptors
		for _, r := range reads {
			got, gotErr := r.dir()
			want, wantErr := r.readX()
			if gotErr != nil || wantErr != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("round %d, %s: Dir gave %v (%v), ReadX %v (%v)", round, r.what, got, gotErr, want, wantErr)
			}
		}
		// status: only fields that do not move while sh waits.
		got, gotErr := d.Status()
		want, wantErr := ReadStatus(pid)
		if gotErr != nil || wantErr != nil || got.Name != want.Name || got.Pid != want.Pid || got.SigCgt != want.SigCgt || got.Umask != want.Umask {
			t.Errorf("round %d, status: Dir gave %+v (%v), ReadStatus %+v (%v)", round, got, gotErr, want, wantErr)
		}
	}
}

// TestDirReadsAfresh checks that reads through descriptors the Dir keeps
// show the process as it is now: its state, limits, cwd and fd table
// changed, then its address space replaced by execve.
func TestDirReadsAfresh(t *testing.T) {
	sh, d := shellDir(t)
	pid := sh.cmd.Process.Pid
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if err := os.WriteFile(b, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Read everything once, so that the files are held (and maps and
	// limits parsed and kept).
	if _, err := d.Maps(); err != nil {
		t.Fatal(err)
	}
	st, err := d.Status()
	if err != nil || st.State != 'S' && st.State != 'R' {
		t.Fatalf("status %+v, %v; want running or sleeping", st, err)
	}
	if _, err := d.Limits(); err != nil {
		t.Fatal(err)
	}
	fds, err := d.FDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if fd.Num == 7 {
			t.Fatalf("fd 7 open before the test opened it: %+v", fd)
		}
	}
	cwd0, err := d.Cwd()
	if err != nil {
		t.Fatal(err)
	}

	sh.run(t, `cd "`+dir+`"; exec 7>"`+a+`"; printf hello >&7`)
	if cwd, err := d.Cwd(); err != nil || cwd != dir || cwd == cwd0 {
		t.Errorf("cwd %q, %v; want %q", cwd, err, dir)
	}
	fd7, err := d.FD(7)
	if err != nil || fd7.Target != a || fd7.Pos != 5 || fd7.Flags&unix.O_ACCMODE != unix.O_WRONLY {
		t.Errorf("fd 7 %+v, %v; want %s written to 5, write-only", fd7, err, a)
	}
	// The same fd number, another file: the held fdinfo shows the new one.
	sh.run(t, `exec 7>&-; exec 7<"`+b+`"; dd bs=1 count=3 <&7 >/dev/null 2>&1`)
	fd7, err = d.FD(7)
	if err != nil || fd7.Target != b || fd7.Flags&unix.O_ACCMODE != unix.O_RDONLY || fd7.Pos == 0 {
		t.Errorf("fd 7 after reopening %+v, %v; want %s read-only, read from", fd7, err, b)
	}
	sh.run(t, `exec 7<&-`)
	if _, err := d.FD(7); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNoProcess) {
		t.Errorf("closed fd 7: %v; want fs.ErrNotExist", err)
	}
	fds, err = d.FDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if fd.Num == 7 {
			t.Errorf("FDs lists fd 7 after it was closed: %+v", fd)
		}
	}

	// Limits set from outside, a state change by signal.
	lim := unix.Rlimit{Cur: 123, Max: 456}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatal(err)
	}
	ls, err := d.Limits()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ls, func(l Limit) bool { return l.Resource == unix.RLIMIT_NOFILE })
	if i < 0 || ls[i].Cur != 123 || ls[i].Max != 456 {
		t.Errorf("limits %+v; want open files 123/456", ls)
	}
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a stopped state", func() bool {
		st, err := d.Status()
		return err == nil && st.State == 'T'
	})
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}

	// execve: maps, auxv and exe are those of the new program.
	exe0, _ := d.Exe()
	auxv0, _ := d.Auxv()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(sh.in, "exec "+sleep+" 60\n"); err != nil {
		t.Fatal(err)
	}
	// Until the new program sleeps, its loader still maps things.
	waitFor(t, "the exec", func() bool {
		exe, err := d.Exe()
		st, serr := ReadStatus(pid)
		return err == nil && exe != exe0 && serr == nil && st.State == 'S'
	})
	want, err := ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Maps()
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("maps after exec: %v, %v; want %v", got, err, want)
	}
	if !strings.Contains(mapsNames(got), "sleep") {
		t.Errorf("maps after exec do not map sleep: %s", mapsNames(got))
	}
	auxv, err := d.Auxv()
	if err != nil || reflect.DeepEqual(auxv, auxv0) {
		t.Errorf("auxv after exec %v, %v; want the new program's", auxv, err)
	}
}

// TestDirKeepsParsesToItself checks that what Maps and Limits return from
// their kept parse of unchanged contents is the caller's to modify.
func TestDirKeepsParsesToItself(t *testing.T) {
	sh, d := shellDir(t)
	pid := sh.cmd.Process.Pid
	for range 2 {
		ms, err := d.Maps()
		if err != nil || len(ms) == 0 {
			t.Fatalf("maps %v, %v", ms, err)
		}
		for i := range ms {
			ms[i] = Mapping{Name: "scribbled"}
		}
		ls, err := d.Limits()
		if err != nil || len(ls) == 0 {
			t.Fatalf("limits %v, %v", ls, err)
		}
		for i := range ls {
			ls[i] = Limit{Resource: -1}
		}
	}
	gotMaps, err := d.Maps()
	wantMaps, wantErr := ReadMaps(pid)
	if err != nil || wantErr != nil || !reflect.DeepEqual(gotMaps, wantMaps) {
		t.Errorf("maps after the caller scribbled over earlier results: %v (%v), want %v (%v)", gotMaps, err, wantMaps, wantErr)
	}
	gotLimits, err := d.Limits()
	wantLimits, wantErr := ReadLimits(pid)
	if err != nil || wantErr != nil || !reflect.DeepEqual(gotLimits, wantLimits) {
		t.Errorf("limits after the caller scribbled over earlier results: %v (%v), want %v (%v)", gotLimits, err, wantLimits, wantErr)
	}
}

// TestDirProcessGone checks that once the process has exited and been
// reaped, every read fails with ErrNoProcess, and that Close is safe twice.
func TestDirProcessGone(t *testing.T) {
	sh, d := shellDir(t)
	pid := sh.cmd.Process.Pid
	// Hold every kind of descriptor first.
	if _, err := d.Status(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.FDs(); err != nil {
		t.Fatal(err)
	}
	sh.cmd.Process.Kill()
	sh.cmd.Wait()
	readers := map[string]func() error{
		"status":      func() error { _, err := d.Status(); return err },
		"maps":        func() error { _, err := d.Maps(); return err },
		"auxv":        func() error { _, err := d.Auxv(); return err },
		"comm":        func() error { _, err := d.Comm(); return err },
		"personality": func() error { _, err := d.Personality(); return err },
		"limits":      func() error { _, err := d.Limits(); return err },
		"cwd":         func() error { _, err := d.Cwd(); return err },
		"exe":         func() error { _, err := d.Exe(); return err },
		"fds":         func() error { _, err := d.FDs(); return err },
		"fd":          func() error { _, err := d.FD(0); return err },
		"statfd":      func() error { _, err := d.StatFD(0); return err },
	}
	for name, read := range readers {
		if err := read(); !errors.Is(err, ErrNoProcess) {
			t.Errorf("%s of an exited process: %v; want ErrNoProcess", name, err)
		}
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := OpenDir(pid); !errors.Is(err, ErrNoProcess) {
		t.Errorf("OpenDir of an exited process: %v; want ErrNoProcess", err)
	}
}

// asAny and withPID make Dir methods and ReadX functions one type.
func asAny[T any](read func() (T, error)) func() (any, error) {
	return func() (any, error) { return read() }
}

func withPID[T any](read func(int) (T, error), pid int) func() (any, error) {
	return func() (any, error) { return read(pid) }
}

func mapsNames(ms []Mapping) string {
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	return strings.Join(names, " ")
}

// waitFor polls cond until it holds; the deadline is only there to end a
// test that would otherwise hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
