package procfs

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// Timer is one POSIX timer (timer_create(2)) of the target, from
// /proc/PID/timers. The file shows how the timer notifies, not whether or
// when it is armed (use timer_gettime(2) from inside the target for that).
type Timer struct {
	ID     int32 // timer id as returned by timer_create
	Signal int32 // sigev_signo
	// SigevValue is sigev_value.sival_ptr. Current kernels print it raw
	// (%px); a kernel that printed it with plain %p shows a hashed value.
	SigevValue uint64
	// Notify is the sigev_notify mode without SIGEV_THREAD_ID: "signal",
	// "thread" or "none".
	Notify string
	// SigevThreadID is set if sigev_notify has SIGEV_THREAD_ID: the signal
	// goes to thread NotifyTID rather than to the process.
	SigevThreadID bool
	// NotifyTID is the tid (SigevThreadID) or tgid the timer signals, as
	// seen in the pid namespace of the procfs mount.
	NotifyTID int
	// ClockID is the clock as the kernel stores it: CPU-time clocks appear
	// in their internal encoding (CLOCK_PROCESS_CPUTIME_ID as -6,
	// CLOCK_THREAD_CPUTIME_ID as -2), which timer_create also accepts.
	ClockID int32
}

// sigev_notify values (include/uapi/asm-generic/siginfo.h).
const (
	sigevSignal   = 0
	sigevNone     = 1
	sigevThread   = 2
	sigevThreadID = 4
)

// SigevNotify returns the sigev_notify value to pass to timer_create to
// recreate the timer, or -1 if Notify is not a known mode.
func (t Timer) SigevNotify() int32 {
	var v int32
	switch t.Notify {
	case "signal":
		v = sigevSignal
	case "none":
		v = sigevNone
	case "thread":
		v = sigevThread
	default:
		return -1
	}
	if t.SigevThreadID {
		v |= sigevThreadID
	}
	return v
}

// ReadTimers reads /proc/PID/timers (needs CONFIG_CHECKPOINT_RESTORE).
func ReadTimers(pid int) ([]Timer, error) {
	b, err := readFile(pid, "timers")
	if err != nil {
		return nil, err
	}
	ts, err := ParseTimers(bytes.NewReader(b))
	if err != nil {
		return nil, wrapErr(pid, "read timers", err)
	}
	return ts, nil
}

// ParseTimers parses the contents of /proc/PID/timers: for each timer the
// four lines (fs/proc/base.c, show_timer)
//
//	ID: %d
//	signal: %d/%px
//	notify: %s/%s.%d     ("signal"|"none"|"thread", "pid"|"tid", pid)
//	ClockID: %d
//
// Every record starts with ID and must have the other three lines; unknown
// lines are ignored and so are empty lines.
func ParseTimers(r io.Reader) ([]Timer, error) {
	var ts []Timer
	const (
		haveSignal = 1 << iota
		haveNotify
		haveClock
		haveAll = haveSignal | haveNotify | haveClock
	)
	have := 0
	var p fieldParser
	err := eachLine(r, func(n int, raw []byte) error {
		if len(raw) == 0 {
			return nil
		}
		key, val, ok := strings.Cut(string(raw), ":")
		if !ok {
			return fmt.Errorf("line %d: no ':' in %q", n, raw)
		}
		val = strings.TrimSpace(val)
		if key == "ID" {
			if len(ts) > 0 && have != haveAll {
				return fmt.Errorf("line %d: timer %d is incomplete", n, ts[len(ts)-1].ID)
			}
			ts = append(ts, Timer{ID: int32(p.int(key, val, 10, 32))})
			have = 0
			if p.err != nil {
				return fmt.Errorf("line %d: %w", n, p.err)
			}
			return nil
		}
		if len(ts) == 0 {
			if key == "signal" || key == "notify" || key == "ClockID" {
				return fmt.Errorf("line %d: %s before the first ID line", n, key)
			}
			return nil
		}
		t := &ts[len(ts)-1]
		switch key {
		case "signal":
			signo, ptr, ok := strings.Cut(val, "/")
			if !ok {
				return fmt.Errorf("line %d: signal %q: want SIGNO/VALUE", n, val)
			}
			t.Signal = int32(p.int("signal number", signo, 10, 32))
			t.SigevValue = parsePtr(&p, ptr)
			have |= haveSignal
		case "notify":
			mode, target, ok1 := strings.Cut(val, "/")
			kind, id, ok2 := strings.Cut(target, ".")
			if !ok1 || !ok2 || (kind != "pid" && kind != "tid") {
				return fmt.Errorf("line %d: notify %q: want MODE/pid.N or MODE/tid.N", n, val)
			}
			t.Notify = mode
			t.SigevThreadID = kind == "tid"
			t.NotifyTID = int(p.int("notify pid", id, 10, 32))
			have |= haveNotify
		case "ClockID":
			t.ClockID = int32(p.int(key, val, 10, 32))
			have |= haveClock
		}
		if p.err != nil {
			return fmt.Errorf("line %d: %w", n, p.err)
		}
		return nil
	})
	if err == nil && len(ts) > 0 && have != haveAll {
		err = fmt.Errorf("timer %d is incomplete", ts[len(ts)-1].ID)
	}
	if err != nil {
		return nil, fmt.Errorf("parse timers: %w", err)
	}
	return ts, nil
}

// parsePtr parses a pointer printed by %px (bare hex digits) or, on old
// kernels, %p ("(null)" for NULL).
func parsePtr(p *fieldParser, s string) uint64 {
	if s == "(null)" {
		return 0
	}
	return p.uint("signal value", strings.TrimPrefix(s, "0x"), 16, 64)
}
