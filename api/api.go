package api

import (
	"encoding/json"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 1

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/crbpf/crbpf.sock"

// Operations.
const (
	OpStatus     = "status"
	OpCheckpoint = "checkpoint"
	OpRestart    = "restart"
	OpList       = "list"
	OpDrop       = "drop"
	OpSave       = "save"
)

// Error codes of a failed request (Response.Code).
const (
	CodeBadRequest  = "bad_request"  // malformed or unknown request
	CodeVersion     = "version"      // protocol version not spoken
	CodeForbidden   = "forbidden"    // the client may not do this
	CodeNotFound    = "not_found"    // no such crid or image
	CodeRefused     = "refused"      // the target cannot be checkpointed (unsupported state)
	CodeGone        = "gone"         // the target exited
	CodeMemoryLimit = "memory_limit" // the in-memory budget is exhausted
	CodeShutdown    = "shutdown"     // the daemon is stopping
	CodeFailed      = "failed"       // anything else
)

// Request is one line a client sends.
type Request struct {
	V  int    `json:"v"`
	Op string `json:"op"`

	// checkpoint
	PID         int    `json:"pid,omitempty"`          // target; ignored with Self
	Self        bool   `json:"self,omitempty"`         // checkpoint the client itself (fork()-like)
	SelfFD      int    `json:"self_fd,omitempty"`      // with Self: the client's fd of this connection
	Precopy     string `json:"precopy,omitempty"`      // "auto" (default), "0" (full freeze) or a number of rounds
	MaxDowntime string `json:"max_downtime,omitempty"` // Go duration, e.g. "10ms"
	InMemory    bool   `json:"in_memory,omitempty"`    // keep the image in the daemon's memory
	Dir         string `json:"dir,omitempty"`          // or write it to this absolute path (checkpoint, save)
	Kill        bool   `json:"kill,omitempty"`         // end the target once the image is complete
	// Parent makes the checkpoint incremental: a crid of an in-memory
	// image, or an absolute image directory.
	Parent string `json:"parent,omitempty"`
	// Every (a Go duration) asks for continuous checkpoints: in memory,
	// one every interval, each incremental on the one before, write
	// tracking kept armed between them, at most Keep of them kept (older
	// ones merged into the next). They go on until the process exits or
	// the client closes the connection; each is an event "checkpoint".
	Every string `json:"every,omitempty"`
	Keep  int    `json:"keep,omitempty"`

	// restart, drop, save
	CRID uint64 `json:"crid,omitempty"` // an in-memory image
	Path string `json:"path,omitempty"` // restart: an image directory instead
	// Stdio says the request line carries three fds (SCM_RIGHTS) for
	// the restarted process's fds 0, 1 and 2; without it they are
	// /dev/null.
	Stdio bool `json:"stdio,omitempty"`
	Wait  bool `json:"wait,omitempty"` // restart: report the process's exit on this connection
}

// Response is one line the daemon sends.
type Response struct {
	V     int    `json:"v"`
	Event string `json:"event,omitempty"` // "round", "exit", "checkpoint"; empty on the final line
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`

	// CRID is the crid of the checkpoint just taken; for a restored
	// self-checkpointed process it is 0 and RestoredFrom says from which.
	CRID         *uint64 `json:"crid,omitempty"`
	RestoredFrom uint64  `json:"restored_from,omitempty"`

	Round      *Round            `json:"round,omitempty"`
	Checkpoint *CheckpointResult `json:"checkpoint,omitempty"`
	Restart    *RestartResult    `json:"restart,omitempty"`
	Images     []Image           `json:"images,omitempty"`
	Status     *Status           `json:"status,omitempty"`
	ExitCode   *int              `json:"exit_code,omitempty"` // event "exit": the status a shell would show
	Continuous *ContinuousEnd    `json:"continuous,omitempty"`
}

// ContinuousEnd is the final answer to continuous checkpoints.
type ContinuousEnd struct {
	Checkpoints int      `json:"checkpoints"` // taken
	Kept        []uint64 `json:"kept"`        // crids of the chain kept in memory, oldest first
	Reason      string   `json:"reason"`      // why they ended
}

// Round is the progress of one pre-copy round.
type Round struct {
	Round      int     `json:"round"`
	DirtyPages uint64  `json:"dirty_pages"`
	NewPages   uint64  `json:"new_pages"`
	Bytes      uint64  `json:"bytes"`
	Seconds    float64 `json:"seconds"`
}

// CheckpointResult describes a completed checkpoint.
type CheckpointResult struct {
	CRID          uint64   `json:"crid"`
	PID           int      `json:"pid"`
	InMemory      bool     `json:"in_memory"`
	Image         string   `json:"image,omitempty"` // the directory, when written to one
	FreezeSeconds float64  `json:"freeze_seconds"`
	TotalSeconds  float64  `json:"total_seconds"`
	PagesWritten  uint64   `json:"pages_written"`
	BytesWritten  uint64   `json:"bytes_written"`
	Mode          string   `json:"mode"`
	StopReason    string   `json:"stop_reason,omitempty"`
	Rounds        int      `json:"rounds"`
	Killed        bool     `json:"killed"`
	Evicted       []uint64 `json:"evicted,omitempty"` // in-memory images dropped to make room
	// Incremental checkpoints: the parent's crid, how unchanged pages were
	// found ("hash" or "tracked"), pages taken from the parent.
	ParentCRID     uint64 `json:"parent_crid,omitempty"`
	Incremental    string `json:"incremental,omitempty"`
	InheritedPages uint64 `json:"inherited_pages,omitempty"`
	// Continuous checkpoints: the oldest kept images merged into the next
	// one (now self-contained) to keep at most Keep; these crids are gone.
	Merged []uint64 `json:"merged,omitempty"`
}

// RestartResult describes a restored process.
type RestartResult struct {
	PID            int     `json:"pid"`
	CRID           uint64  `json:"crid"`
	SamePID        bool    `json:"same_pid"`
	RestoreSeconds float64 `json:"restore_seconds"`
}

// Image is one in-memory image.
type Image struct {
	CRID    uint64 `json:"crid"`
	PID     int    `json:"pid"`
	Comm    string `json:"comm"`
	Bytes   uint64 `json:"bytes"`
	Created string `json:"created"` // RFC 3339
	Owner   int    `json:"owner_uid"`
	// Parent is the crid of the in-memory image an incremental image
	// builds on (0: self-contained).
	Parent uint64 `json:"parent_crid,omitempty"`
}

// Status describes the daemon.
type Status struct {
	Version       string  `json:"version"`
	PID           int     `json:"pid"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	Images        int     `json:"images"`
	Bytes         uint64  `json:"bytes"`
	MemoryLimit   uint64  `json:"memory_limit"`
	MemoryPolicy  string  `json:"memory_policy"`
	Telemetry     string  `json:"telemetry"`
	Checkpointing bool    `json:"checkpointing"`
}

// Error is a failed request as the client sees it.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Err returns the failure the response reports, or nil.
func (r *Response) Err() error {
	if r.OK {
		return nil
	}
	return &Error{Code: r.Code, Message: r.Error}
}

// RestoredReply is the line a restored self-checkpointed process reads on
// its connection instead of the daemon's answer: crid 0, and the crid it
// was restored from.
func RestoredReply(from uint64) []byte {
	zero := uint64(0)
	b, err := json.Marshal(Response{V: Version, OK: true, CRID: &zero, RestoredFrom: from})
	if err != nil {
		panic(fmt.Sprintf("api: marshal restored reply: %v", err))
	}
	return append(b, '\n')
}
