package checkpoint

import (
	"errors"
	"fmt"
)

// Sentinel errors; callers map them to exit codes.
var (
	// ErrTargetGone: no such process, or it exited during the checkpoint.
	ErrTargetGone = errors.New("target process is gone")
	// ErrPermission: crbpf lacks a capability or ptrace access.
	ErrPermission = errors.New("permission denied")
	// ErrUnsupportedState: the target uses something crbpf cannot save yet.
	ErrUnsupportedState = errors.New("unsupported target state")
)

// UnsupportedError names what in the target crbpf cannot checkpoint.
type UnsupportedError struct {
	PID  int
	What string // e.g. "fd 5 (socket:[1234])"
	Why  string // e.g. "sockets are not supported yet"
}

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("cannot checkpoint pid %d: %s: %s", e.PID, e.What, e.Why)
}

func (e *UnsupportedError) Unwrap() error { return ErrUnsupportedState }
