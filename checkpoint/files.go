package checkpoint

import (
	"fmt"
	"strings"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
	"golang.org/x/sys/unix"
)

// Major device numbers of terminals (Documentation/admin-guide/devices.txt).
var ttyMajors = map[uint32]bool{4: true, 5: true, 136: true, 137: true, 138: true, 139: true, 140: true, 141: true, 142: true, 143: true}

// collectFiles reads the target's fd table and refuses what restart cannot
// reopen.
func collectFiles(pd *procfs.Dir, self int) ([]image.File, error) {
	fds, err := pd.FDs()
	if err != nil {
		return nil, fmt.Errorf("read fds of pid %d: %w", pd.PID(), err)
	}
	out := make([]image.File, 0, len(fds))
	for _, fd := range fds {
		f, err := classifyFD(pd, fd, fd.Num == self)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func classifyFD(pd *procfs.Dir, fd procfs.FD, self bool) (image.File, error) {
	pid := pd.PID()
	f := image.File{FD: fd.Num, Path: fd.Target, Flags: fd.Flags &^ unix.O_CLOEXEC, Cloexec: fd.Cloexec, Pos: fd.Pos}
	what := fmt.Sprintf("fd %d (%s)", fd.Num, fd.Target)
	unsupported := func(why string) (image.File, error) {
		return image.File{}, &UnsupportedError{PID: pid, What: what, Why: why}
	}
	st, err := pd.StatFD(fd.Num)
	if err != nil {
		return unsupported(fmt.Sprintf("cannot stat it: %v", err))
	}
	f.Mode, f.Dev, f.Inode, f.Size = st.Mode, st.Dev, st.Ino, st.Size
	stdio := fd.Num <= 2
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if strings.HasSuffix(fd.Target, " (deleted)") {
			return unsupported("the file was deleted")
		}
		if strings.HasPrefix(fd.Target, "/memfd:") {
			return unsupported("memfd is not supported yet")
		}
		if !strings.HasPrefix(fd.Target, "/") {
			return unsupported("regular file without a path")
		}
		f.Kind = image.FileRegular
	case unix.S_IFDIR:
		f.Kind = image.FileDir
	case unix.S_IFCHR:
		if ttyMajors[unix.Major(st.Rdev)] {
			if !stdio {
				return unsupported("terminals outside fds 0-2 are not supported yet")
			}
			f.Kind = image.FileStdio
		} else {
			f.Kind = image.FileChar
		}
	case unix.S_IFIFO:
		if !stdio {
			return unsupported("pipes outside fds 0-2 are not supported yet")
		}
		f.Kind = image.FileStdio
	case unix.S_IFSOCK:
		if self {
			// The connection the target asked for this checkpoint on:
			// restart gives it a fresh socket holding the reply.
			f.Kind, f.Path = image.FileSelfConn, ""
			break
		}
		return unsupported("sockets are not supported yet")
	default:
		kind := fd.Target
		if strings.HasPrefix(kind, "anon_inode:") {
			kind = strings.TrimPrefix(kind, "anon_inode:")
			return unsupported(kind + " is not supported yet")
		}
		return unsupported("this kind of file is not supported yet")
	}
	return f, nil
}
