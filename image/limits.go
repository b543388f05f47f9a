package image

// Limits enforced by Decode and Validate (and therefore by Encode). They are
// reader policy, not part of the byte layout: raising one does not need a
// new FormatVersion, lowering one may reject images older builds wrote.
const (
	MaxMetaJSON   = 64 << 20                 // bytes of JSON in meta.crbpf
	MaxMetaSize   = HeaderSize + MaxMetaJSON // bytes of meta.crbpf
	MaxObjects    = 1 << 22                  // JSON objects of any kind in meta.crbpf
	MaxVMAs       = 1 << 20                  // mappings (the kernel default vm.max_map_count is 65530)
	MaxPageRuns   = 1 << 21                  // page runs, all VMAs together
	MaxTotalPages = (1 << 36) / PageSize     // pages stored, all runs together: 64 GiB
	MaxFiles      = 1 << 20                  // open fds (the kernel default fs.nr_open)
	MaxCmdline    = 1 << 16                  // Header.Cmdline entries
	MaxAuxv       = 1024                     // MM.Auxv words
	MaxRegset     = 1 << 20                  // bytes of Task.Regs or Task.XState
	MaxSignal     = 64                       // highest signal number (_NSIG)
	MaxPending    = 1 << 16                  // queued signals, each of Task.Pending and Task.SharedPend
	MaxRlimits    = 64                       // Task.Rlimits entries; Resource < MaxRlimits
	MaxGroups     = 1024                     // Task.Creds.Groups entries (restart passes them in one page)
	MaxITimers    = 3                        // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
	MaxPosixTimer = 1 << 16                  // Task.PosixTimers entries
	MaxRounds     = 1 << 16                  // Stats.Rounds entries
)

// Sizes of raw kernel structures kept in the image.
const (
	AMD64RegsSize = 27 * 8 // x86_64 struct user_regs_struct (NT_PRSTATUS)
	SiginfoSize   = 128    // siginfo_t
)
