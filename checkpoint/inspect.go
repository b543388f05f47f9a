package checkpoint

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"golang.org/x/sys/unix"
)

// Capabilities crbpf needs to checkpoint another process.
const (
	capSysAdmin            = 21
	capSysPtrace           = 19
	capCheckpointRestore   = 40
	procStatusCapEffPrefix = "CapEff:"
)

// target is what inspection learned about the process before seizing it.
type target struct {
	pid    int
	stat   *procfs.Stat
	status *procfs.Status
}

// inspect refuses targets crbpf must not or cannot touch, before anything
// is done to them.
func inspect(pid int) (*target, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("invalid pid %d: %w", pid, ErrTargetGone)
	}
	if pid == os.Getpid() {
		return nil, &UnsupportedError{PID: pid, What: "the target", Why: "it is crbpf itself"}
	}
	stat, err := procfs.ReadStat(pid)
	if err != nil {
		if errors.Is(err, procfs.ErrNoProcess) {
			return nil, fmt.Errorf("no process with pid %d: %w", pid, ErrTargetGone)
		}
		return nil, fmt.Errorf("inspect pid %d: %w", pid, err)
	}
	if stat.IsKernelThread() {
		return nil, &UnsupportedError{PID: pid, What: "the target", Why: "it is a kernel thread"}
	}
	switch stat.State {
	case 'Z', 'X', 'x':
		return nil, &UnsupportedError{PID: pid, What: "the target", Why: fmt.Sprintf("it is a zombie (state %c): it has exited and waits to be reaped", stat.State)}
	}
	if err := checkPrivilege(); err != nil {
		return nil, err
	}
	status, err := procfs.ReadStatus(pid)
	if err != nil {
		if errors.Is(err, procfs.ErrNoProcess) {
			return nil, fmt.Errorf("no process with pid %d: %w", pid, ErrTargetGone)
		}
		return nil, fmt.Errorf("inspect pid %d: %w", pid, err)
	}
	if status.Tgid != pid {
		return nil, &UnsupportedError{PID: pid, What: "the target", Why: fmt.Sprintf("%d is a thread of process %d; checkpoint the process", pid, status.Tgid)}
	}
	if status.TracerPid != 0 {
		return nil, &UnsupportedError{PID: pid, What: "the target", Why: fmt.Sprintf("it is being traced by pid %d", status.TracerPid)}
	}
	if status.Threads != 1 {
		return nil, &UnsupportedError{PID: pid, What: fmt.Sprintf("%d threads", status.Threads), Why: "multi-threaded processes are not supported yet"}
	}
	children, err := procfs.Children(pid)
	if err != nil {
		return nil, fmt.Errorf("inspect pid %d: %w", pid, err)
	}
	if len(children) > 0 {
		return nil, &UnsupportedError{PID: pid, What: fmt.Sprintf("child processes %v", children), Why: "process trees are not supported yet"}
	}
	return &target{pid: pid, stat: stat, status: status}, nil
}

// checkPrivilege names the capability crbpf lacks instead of letting a
// ptrace or pidfd call fail with a bare EPERM later.
func checkPrivilege() error {
	caps, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("read own capabilities: %w", err)
	}
	if caps&(1<<capSysPtrace) == 0 {
		return fmt.Errorf("crbpf needs CAP_SYS_PTRACE to stop and read another process (run as root): %w", ErrPermission)
	}
	if caps&(1<<capSysAdmin) == 0 && caps&(1<<capCheckpointRestore) == 0 {
		return fmt.Errorf("crbpf needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (run as root): %w", ErrPermission)
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	st, err := procfs.ReadStatus(os.Getpid())
	if err != nil {
		return 0, err
	}
	return st.CapEff, nil
}

// vmaReader reads /proc/PID/maps as image VMAs (without page data) again
// and again, as the rounds and the freeze of one checkpoint do, and
// classifies the mappings (checking the files they map) only when they
// changed since its last read. Unchanged, the read in the freeze is the
// kernel's writing of the file and nothing else (25 mappings: 70-76 µs
// with the classifying, the read alone 24 µs, warm). A mapped file
// replaced or removed since shows as " (deleted)", a change.
type vmaReader struct {
	maps []procfs.Mapping
	vmas []image.VMA // classified from maps; never handed out
}

func (r *vmaReader) read(pd *procfs.Dir) ([]image.VMA, error) {
	maps, err := pd.Maps()
	if err != nil {
		return nil, gone(pd.PID(), err)
	}
	if r.vmas == nil || !slices.Equal(maps, r.maps) {
		vmas, err := classifyVMAs(pd.PID(), maps)
		if err != nil {
			r.maps, r.vmas = nil, nil
			return nil, err
		}
		r.maps, r.vmas = maps, vmas
	}
	return slices.Clone(r.vmas), nil
}

// classifyVMAs turns /proc/PID/maps into image VMAs (without page data),
// refusing mappings crbpf cannot restore.
func classifyVMAs(pid int, maps []procfs.Mapping) ([]image.VMA, error) {
	var out []image.VMA
	checked := map[mappedFile]bool{} // accepted by checkMappedFile
	for _, m := range maps {
		v := image.VMA{Start: m.Start, End: m.End, Prot: m.Prot(), Name: m.Name, Offset: m.Offset,
			Dev: unix.Mkdev(m.Major, m.Minor), Inode: m.Inode}
		if m.Shared {
			v.Flags = unix.MAP_SHARED
		} else {
			v.Flags = unix.MAP_PRIVATE
		}
		what := func() string { return fmt.Sprintf("mapping %#x-%#x %s", m.Start, m.End, m.Name) }
		switch {
		case m.Name == "[vdso]":
			v.Kind = image.KindVDSO
		case m.Name == "[vvar]":
			v.Kind = image.KindVVAR
		case m.Name == "[vvar_vclock]":
			v.Kind = image.KindVVARVclock
		case m.Name == "[vsyscall]":
			v.Kind = image.KindVsyscall
		case m.Name == "[stack]":
			v.Kind = image.KindAnon
			v.Flags |= unix.MAP_GROWSDOWN
		case m.Name == "[heap]" || (m.Inode == 0 && (m.Name == "" || strings.HasPrefix(m.Name, "[anon:"))):
			if m.Shared {
				// A shared anonymous mapping created before fork shows as
				// /dev/zero; an inode of 0 here is unexpected.
				return nil, &UnsupportedError{PID: pid, What: what(), Why: "shared mapping without a backing object"}
			}
			v.Kind = image.KindAnon
		case strings.HasPrefix(m.Name, "[") && m.Inode == 0:
			return nil, &UnsupportedError{PID: pid, What: what(), Why: "special mapping not supported"}
		case strings.HasPrefix(m.Name, "/SYSV"):
			return nil, &UnsupportedError{PID: pid, What: what(), Why: "System V shared memory is not supported yet"}
		case strings.HasPrefix(m.Name, "/memfd:"):
			return nil, &UnsupportedError{PID: pid, What: what(), Why: "memfd mappings are not supported yet"}
		case strings.HasPrefix(m.Name, "/dev/zero") && m.Shared:
			v.Kind = image.KindShmemAnon
		case m.Deleted():
			return nil, &UnsupportedError{PID: pid, What: what(), Why: "the mapped file was deleted"}
		case m.Name != "" && m.Name[0] == '/':
			v.Path = m.Path()
			if m.Shared {
				v.Kind = image.KindFileShared
			} else {
				v.Kind = image.KindFile
			}
			// A file is mapped as several mappings (text, data, ...):
			// stat it once.
			if k := (mappedFile{v.Path, v.Dev, v.Inode}); !checked[k] {
				if err := checkMappedFile(v); err != nil {
					return nil, &UnsupportedError{PID: pid, What: what(), Why: err.Error()}
				}
				checked[k] = true
			}
		default:
			return nil, &UnsupportedError{PID: pid, What: what(), Why: "unknown kind of mapping"}
		}
		out = append(out, v)
	}
	return out, nil
}

// mappedFile is what checkMappedFile checks: that path names that file.
type mappedFile struct {
	path     string
	dev, ino uint64
}

func checkMappedFile(v image.VMA) error {
	var st unix.Stat_t
	if err := unix.Stat(v.Path, &st); err != nil {
		return fmt.Errorf("cannot stat the mapped file: %v", err)
	}
	if st.Ino != v.Inode || st.Dev != v.Dev {
		return fmt.Errorf("the path now names another file than the one mapped")
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG && st.Mode&unix.S_IFMT != unix.S_IFCHR {
		return fmt.Errorf("mapped file is not a regular file")
	}
	return nil
}

// checkSharedAnon refuses shared anonymous mappings that another process also
// maps: their contents could change under the restored copy's feet, and they
// cannot be shared again after restart.
func checkSharedAnon(pid int, vmas []image.VMA) error {
	type key struct{ dev, ino uint64 }
	mine := map[key]image.VMA{}
	for _, v := range vmas {
		if v.Kind == image.KindShmemAnon {
			mine[key{v.Dev, v.Inode}] = v
		}
	}
	if len(mine) == 0 {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("scan /proc for sharers: %w", err)
	}
	for _, e := range ents {
		var other int
		if _, err := fmt.Sscanf(e.Name(), "%d", &other); err != nil || other == pid {
			continue
		}
		maps, err := procfs.ReadMaps(other)
		if err != nil {
			continue // gone, or a kernel thread without maps
		}
		for _, m := range maps {
			if !m.Shared {
				continue
			}
			if v, ok := mine[key{unix.Mkdev(m.Major, m.Minor), m.Inode}]; ok {
				return &UnsupportedError{PID: pid, What: fmt.Sprintf("mapping %#x-%#x %s", v.Start, v.End, v.Name),
					Why: fmt.Sprintf("shared memory also mapped by pid %d is not supported yet", other)}
			}
		}
	}
	return nil
}
