//go:build linux

package dirty

import (
	"github.com/crbpf/crbpf/internal/testutil"

	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The cross-process layout crbpf uses: the userfaultfd is created inside the
// target (here a child re-running this test binary, which creates it itself
// instead of by injection), pulled out with pidfd_getfd, and armed and
// scanned from the parent.

const childEnv = "DIRTY_TEST_CHILD"

// TestHelperChild is the child's body, not a test: it runs only when the
// environment asks for it. It maps 64 pages, creates a userfaultfd, prints
// "ready ADDR LEN FD" and obeys one command a line: "write PAGE" stores into
// a page, "close" closes its userfaultfd, "exec" replaces itself with
// sleep(1); each but exec answers "ok".
func TestHelperChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		return
	}
	fail := func(err error) {
		fmt.Println("error", err)
		os.Exit(1)
	}
	b, err := unix.Mmap(-1, 0, 64*ps(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fail(err)
	}
	touch(b)
	fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, UserfaultfdFlags, 0, 0)
	if errno != 0 {
		fail(errno)
	}
	fmt.Printf("ready %d %d %d\n", addrOf(b), len(b), fd)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "write":
			p, err := strconv.Atoi(f[1])
			if err != nil {
				fail(err)
			}
			b[p*ps()+1]++
		case len(f) == 1 && f[0] == "close":
			if err := unix.Close(int(fd)); err != nil {
				fail(err)
			}
		case len(f) == 1 && f[0] == "exec":
			fail(syscall.Exec("/bin/sleep", []string{"sleep", "100"}, nil))
		default:
			fail(fmt.Errorf("bad command %q", sc.Text()))
		}
		fmt.Println("ok")
	}
	os.Exit(0)
}

type child struct {
	cmd  *exec.Cmd
	in   io.Writer
	out  *bufio.Scanner
	mem  []byte // the child's mapping: only its address and length are used
	addr uint64
	uffd int // fd number in the child
}

func startChild(t *testing.T) *child {
	t.Helper()
	testutil.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperChild$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	c := &child{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	if !c.out.Scan() {
		t.Fatalf("child: no ready line: %v", c.out.Err())
	}
	var size int
	if _, err := fmt.Sscanf(c.out.Text(), "ready %d %d %d", &c.addr, &size, &c.uffd); err != nil {
		t.Fatalf("child said %q: %v", c.out.Text(), err)
	}
	c.mem = make([]byte, size)
	return c
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) do(t *testing.T, command string) {
	t.Helper()
	if _, err := fmt.Fprintln(c.in, command); err != nil {
		t.Fatal(err)
	}
	if !c.out.Scan() || c.out.Text() != "ok" {
		t.Fatalf("child, %q: %q %v", command, c.out.Text(), c.out.Err())
	}
}

// pullUffd copies the child's userfaultfd into this process.
func (c *child) pullUffd(t *testing.T) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(c.pid(), 0)
	if err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, c.uffd, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd: %v", err)
	}
	return fd
}

// pages returns the child's page ranges, as ranges of its address space.
func (c *child) pages(pages ...int) []Range {
	var out []Range
	for _, r := range pagesToRanges(c.mem, pages) {
		off := addrOf(c.mem)
		out = append(out, Range{r.Start - off + c.addr, r.End - off + c.addr})
	}
	return out
}

// armChild pulls the child's userfaultfd, lets the child close its own copy,
// and arms the child's mapping.
func armChild(t *testing.T, c *child) (*WP, *Scanner) {
	t.Helper()
	w, err := NewWP(c.pullUffd(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	// Registration survives the child's close: this process holds the
	// other reference to the file.
	c.do(t, "close")
	end := c.addr + uint64(len(c.mem))
	if err := w.Register(c.addr, end); err != nil {
		t.Fatal(err)
	}
	if err := w.Protect(c.addr, end); err != nil {
		t.Fatal(err)
	}
	s, err := OpenScanner(c.pid())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return w, s
}

func TestCrossProcess(t *testing.T) {
	c := startChild(t)
	w, s := armChild(t, c)
	end := c.addr + uint64(len(c.mem))
	scan := func(what string, want []Range) {
		t.Helper()
		got, err := s.ScanWritten(c.addr, end, nil)
		if err != nil {
			t.Fatal(err)
		}
		sameRanges(t, what, got, want)
	}
	scan("armed", nil)
	c.do(t, "write 3")
	c.do(t, "write 17")
	c.do(t, "write 18")
	scan("child's writes", c.pages(3, 17, 18))

	// GUP writes into the child from this process.
	data := []byte("from the parent")
	local := []unix.Iovec{{Base: &data[0]}}
	local[0].SetLen(len(data))
	remote := []unix.RemoteIovec{{Base: uintptr(c.addr + 30*pageSize + 100), Len: len(data)}}
	if _, err := unix.ProcessVMWritev(c.pid(), local, remote, 0); err != nil {
		t.Fatal(err)
	}
	mem, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", c.pid()), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if _, err := mem.WriteAt(data, int64(c.addr+40*pageSize)); err != nil {
		t.Fatal(err)
	}
	scan("process_vm_writev and /proc/PID/mem", c.pages(30, 40))

	// execve replaces the address space the fd and the pagemap file are
	// bound to.
	fmt.Fprintln(c.in, "exec")
	deadline := time.Now().Add(10 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.pid()))
		if strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("child did not exec")
		}
		time.Sleep(time.Millisecond)
	}
	_, err = s.ScanWritten(c.addr, end, nil)
	t.Logf("scan after exec: %v", err)
	if !errors.Is(err, ErrTargetGone) {
		t.Errorf("scan after exec: %v, want ErrTargetGone", err)
	}
	err = w.Protect(c.addr, end)
	t.Logf("Protect after exec: %v", err)
	if !errors.Is(err, ErrTargetGone) {
		t.Errorf("Protect after exec: %v, want ErrTargetGone", err)
	}
}

func TestTargetExit(t *testing.T) {
	c := startChild(t)
	w, s := armChild(t, c)
	end := c.addr + uint64(len(c.mem))
	c.do(t, "write 5")
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	_, err := s.ScanWritten(c.addr, end, nil)
	t.Logf("scan after exit: %v", err)
	if !errors.Is(err, ErrTargetGone) {
		t.Errorf("scan after exit: %v, want ErrTargetGone", err)
	}
	err = w.Protect(c.addr, end)
	t.Logf("Protect after exit: %v", err)
	if !errors.Is(err, ErrTargetGone) {
		t.Errorf("Protect after exit: %v, want ErrTargetGone", err)
	}
	// UFFDIO_REGISTER answers ENOMEM for a dead address space, as for a
	// range with no mapping at all.
	err = w.Register(c.addr, end)
	t.Logf("Register after exit: %v", err)
	if !errors.Is(err, unix.ENOMEM) {
		t.Errorf("Register after exit: %v, want ENOMEM", err)
	}
}
