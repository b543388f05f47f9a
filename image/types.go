package image

import "time"

// PageSize is the page granularity of every address, length and data offset in an image.
const PageSize = 4096

// FormatVersion is the version of the on-disk format described in
// docs/image-format.md, the one Encode writes. Version 2 added page hashes,
// parent images (VMA.Inherit) and zero pages of file mappings (VMA.Zero).
const FormatVersion = 2

// MinFormatVersion is the oldest version Decode reads: version 1 images are
// version 2 images without hashes, inherited or zero spans.
const MinFormatVersion = 1

// File names inside an image directory.
const (
	MetaFile  = "meta.crbpf"  // fixed binary header + JSON metadata (see docs/image-format.md)
	PagesFile = "pages.crbpf" // raw page data; every run starts at a page-aligned offset
	// HashesFile holds a 64-bit xxHash of every page slot of PagesFile
	// (little-endian, slot i at byte 8·i), so that a later incremental
	// checkpoint compares pages with this image's without reading them.
	HashesFile = "hashes.crbpf"
)

// Image is the metadata of one checkpoint: everything except the page bytes.
type Image struct {
	Header Header `json:"header"`
	MM     MM     `json:"mm"`
	VMAs   []VMA  `json:"vmas"`  // sorted by Start, non-overlapping
	Task   Task   `json:"task"`  // the (single) thread
	Files  []File `json:"files"` // sorted by FD
	Stats  Stats  `json:"stats"`
	// Hashes describes HashesFile; nil when the image has none (version 1).
	Hashes *Hashes `json:"hashes,omitempty"`
}

// Hashes describes the page hash file of an image.
type Hashes struct {
	Pages  uint64 `json:"pages"`  // entries: one per page slot of PagesFile
	SHA256 string `json:"sha256"` // of the whole file, hex
}

// Header identifies the checkpoint and the machine it was taken on.
type Header struct {
	CRID uint64 `json:"crid"`
	// ID is a random 128-bit id of the checkpoint (hex), kept when the
	// image is squashed: crids are unique per crid counter only, ID tells
	// apart images of different counters that share a crid.
	ID         string `json:"id,omitempty"`
	ParentCRID uint64 `json:"parent_crid"` // 0: none
	// ParentID is the parent's ID (checked when the chain is loaded).
	ParentID string `json:"parent_id,omitempty"`
	// Parent is where the parent image was when this one was written,
	// relative to this image's directory ("../crbpf-12"); a hint, the
	// parent's crid decides.
	Parent        string    `json:"parent,omitempty"`
	PID           int       `json:"pid"`
	Time          time.Time `json:"time"`
	KernelRelease string    `json:"kernel_release"`
	Arch          string    `json:"arch"` // GOARCH naming: "amd64"
	CrbpfVersion  string    `json:"crbpf_version"`
	Comm          string    `json:"comm"`
	Exe           string    `json:"exe"`
	Cmdline       []string  `json:"cmdline"`
}

// MM holds the mm_struct fields restored with PR_SET_MM_MAP.
type MM struct {
	StartCode  uint64   `json:"start_code"`
	EndCode    uint64   `json:"end_code"`
	StartData  uint64   `json:"start_data"`
	EndData    uint64   `json:"end_data"`
	StartBrk   uint64   `json:"start_brk"`
	Brk        uint64   `json:"brk"` // exact, may be unaligned
	StartStack uint64   `json:"start_stack"`
	ArgStart   uint64   `json:"arg_start"`
	ArgEnd     uint64   `json:"arg_end"`
	EnvStart   uint64   `json:"env_start"`
	EnvEnd     uint64   `json:"env_end"`
	Auxv       []uint64 `json:"auxv"` // raw (type, value) pairs including the AT_NULL terminator
	ExePath    string   `json:"exe_path"`
}

// VMA kinds.
const (
	KindAnon       = "anon"        // private anonymous (incl. [heap], [stack])
	KindFile       = "file"        // private file-backed
	KindFileShared = "file-shared" // shared file-backed: re-mapped from the file, no page data
	KindShmemAnon  = "shmem-anon"  // MAP_SHARED|MAP_ANONYMOUS mapped by this process only
	KindVDSO       = "vdso"        // [vdso]
	KindVVAR       = "vvar"        // [vvar]
	KindVVARVclock = "vvar_vclock" // [vvar_vclock]
	KindVsyscall   = "vsyscall"    // [vsyscall]: kernel-fixed, nothing to restore
)

// VMA is one mapping of the address space.
type VMA struct {
	Start  uint64    `json:"start"`
	End    uint64    `json:"end"`
	Prot   uint32    `json:"prot"`  // PROT_READ|PROT_WRITE|PROT_EXEC
	Flags  uint32    `json:"flags"` // MAP_PRIVATE or MAP_SHARED, plus MAP_GROWSDOWN for stacks
	Kind   string    `json:"kind"`
	Name   string    `json:"name,omitempty"` // /proc/PID/maps name column ([heap], [stack], path)
	Path   string    `json:"path,omitempty"` // file-backed: the file to reopen
	Offset uint64    `json:"offset"`         // file-backed: file offset of Start
	Dev    uint64    `json:"dev,omitempty"`
	Inode  uint64    `json:"inode,omitempty"`
	Pages  []PageRun `json:"pages,omitempty"` // sorted by Addr, inside [Start, End)
	// Zero lists pages of a private file mapping that are zero (rather
	// than the file's content). Pages of other kinds without data are
	// zero anyway.
	Zero []Span `json:"zero,omitempty"`
	// Inherit lists pages whose content is the parent image's at the same
	// address (resolved through its own parents). Only in images with a
	// parent; the parent must have data for each of them.
	Inherit []Span `json:"inherit,omitempty"`
}

// Span is a range of whole pages: [Addr, Addr + NPages·PageSize).
type Span struct {
	Addr   uint64 `json:"addr"`
	NPages uint64 `json:"npages"`
}

// PageRun is a run of contiguous pages whose bytes are in the pages file.
// Pages of a VMA not covered by a run are zero (anonymous) or the file's
// content (private file-backed).
type PageRun struct {
	Addr    uint64   `json:"addr"`
	NPages  uint64   `json:"npages"`
	DataOff uint64   `json:"data_off"` // offset in PagesFile, multiple of PageSize
	CRC     []uint32 `json:"crc"`      // CRC-32C (Castagnoli) of each page
	// Src is, in a resolved chain (package chain), the index of the image
	// whose pages file holds the data; 0 (this image) in images as stored.
	Src int `json:"-"`
}

// Task is the state of one thread.
type Task struct {
	TID         int          `json:"tid"`
	Regs        []byte       `json:"regs"`   // NT_PRSTATUS regset (user_regs_struct), after the syscall-restart fix-up
	XState      []byte       `json:"xstate"` // NT_X86_XSTATE regset
	SigMask     uint64       `json:"sigmask"`
	SigActions  []SigAction  `json:"sigactions,omitempty"`
	SigAltStack SigAltStack  `json:"sigaltstack"`
	Pending     []Siginfo    `json:"pending,omitempty"`        // thread-private pending signals
	SharedPend  []Siginfo    `json:"shared_pending,omitempty"` // process-wide pending signals
	Rseq        *Rseq        `json:"rseq,omitempty"`
	RobustList  RobustList   `json:"robust_list"`
	ClearTID    uint64       `json:"clear_tid_address"`
	Comm        string       `json:"comm"`
	Personality uint32       `json:"personality"`
	Cwd         string       `json:"cwd"`
	Umask       uint32       `json:"umask"`
	Rlimits     []Rlimit     `json:"rlimits"`
	ITimers     []ITimer     `json:"itimers,omitempty"` // ITIMER_REAL, _VIRTUAL, _PROF (only armed ones)
	PosixTimers []PosixTimer `json:"posix_timers,omitempty"`
	// Affinity is the CPU affinity mask (sched_getaffinity), one bit per
	// CPU in 64-bit words; empty when unknown.
	Affinity []uint64 `json:"affinity,omitempty"`
	// Nice is the nice value (-20..19).
	Nice int `json:"nice,omitempty"`
	// Creds are the process's user and group ids; nil in images from
	// before they were saved (restart then keeps the restarter's).
	Creds *Creds `json:"creds,omitempty"`
}

// Creds are a task's credentials as /proc/PID/status shows them.
type Creds struct {
	UID        [4]uint32 `json:"uid"` // real, effective, saved, filesystem
	GID        [4]uint32 `json:"gid"`
	Groups     []uint32  `json:"groups,omitempty"` // supplementary groups
	NoNewPrivs bool      `json:"no_new_privs,omitempty"`
}

// SigAction is one installed handler (only non-default dispositions are saved).
type SigAction struct {
	Signo    int    `json:"signo"`
	Handler  uint64 `json:"handler"`
	Flags    uint64 `json:"flags"`
	Restorer uint64 `json:"restorer"`
	Mask     uint64 `json:"mask"`
}

// SigAltStack is the thread's alternate signal stack (stack_t).
type SigAltStack struct {
	SP    uint64 `json:"sp"`
	Flags int32  `json:"flags"`
	Size  uint64 `json:"size"`
}

// Siginfo is a raw 128-byte siginfo_t of a queued signal.
type Siginfo struct {
	Raw []byte `json:"raw"`
}

// Rseq is the registered restartable-sequences area.
type Rseq struct {
	Addr uint64 `json:"addr"`
	Len  uint32 `json:"len"`
	Sig  uint32 `json:"sig"`
}

// RobustList is the robust futex list head registered with set_robust_list.
type RobustList struct {
	Head uint64 `json:"head"`
	Len  uint64 `json:"len"`
}

// Rlimit is one resource limit.
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// ITimer is an armed interval timer (setitimer), times in nanoseconds.
type ITimer struct {
	Which    int   `json:"which"`
	Interval int64 `json:"interval_ns"`
	Value    int64 `json:"value_ns"`
}

// PosixTimer is a timer_create timer with its remaining time.
type PosixTimer struct {
	ID        int32  `json:"id"`
	ClockID   int32  `json:"clock_id"`
	Notify    int32  `json:"notify"` // SIGEV_*
	Signo     int32  `json:"signo"`
	Value     uint64 `json:"sigev_value"`
	NotifyTID int32  `json:"notify_tid,omitempty"`
	Interval  int64  `json:"interval_ns"`
	Remain    int64  `json:"value_ns"`
	Overrun   int32  `json:"overrun"`
}

// File kinds.
const (
	FileRegular = "regular" // reopened by path, flags and offset
	FileChar    = "chardev" // reopened by path (/dev/null, ...)
	FileStdio   = "stdio"   // terminal or pipe on fd 0-2: replaced by the restarter's own fd
	// FileSelfConn is the connection on which the process asked the daemon
	// to checkpoint it: restart replaces it with a socket that holds the
	// reply "you are the restored copy".
	FileSelfConn = "self-connection"
	FileDir      = "directory"
)

// File is one open file descriptor.
type File struct {
	FD      int    `json:"fd"`
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Flags   int    `json:"flags"` // O_* as in fdinfo, without O_CLOEXEC
	Cloexec bool   `json:"cloexec"`
	Pos     int64  `json:"pos"`
	Mode    uint32 `json:"mode"` // st_mode at checkpoint
	Dev     uint64 `json:"dev,omitempty"`
	Inode   uint64 `json:"inode,omitempty"`
	Size    int64  `json:"size,omitempty"`
}

// Stats are figures about how the checkpoint was taken.
type Stats struct {
	FreezeNanos  int64   `json:"freeze_ns"`
	TotalNanos   int64   `json:"total_ns"`
	PagesWritten uint64  `json:"pages_written"`
	BytesWritten uint64  `json:"bytes_written"`
	Rounds       []Round `json:"rounds,omitempty"`
	StopReason   string  `json:"stop_reason,omitempty"`
}

// Round describes one pre-copy round.
type Round struct {
	Index      int    `json:"index"`
	DirtyPages uint64 `json:"dirty_pages"`
	Bytes      uint64 `json:"bytes"`
	Nanos      int64  `json:"ns"`
}
