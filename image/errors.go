package image

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned by this package matches at most one
// of them with errors.Is.
var (
	// ErrNotImage: the path or bytes are not a crbpf image at all
	// (no meta.crbpf, not a directory, wrong magic).
	ErrNotImage = errors.New("not a crbpf image")
	// ErrVersion: the image was written in a format version this build
	// does not read. See VersionError.
	ErrVersion = errors.New("unsupported image format version")
	// ErrCorrupt: the bytes are not what the writer wrote (checksum
	// mismatch, malformed header or JSON, wrong page CRC).
	ErrCorrupt = errors.New("image corrupt")
	// ErrTruncated: a file is shorter than the image requires.
	// See TruncatedError.
	ErrTruncated = errors.New("image truncated")
	// ErrInvalid: the metadata decoded but breaks an invariant of the
	// format or exceeds a limit. See ValidationError.
	ErrInvalid = errors.New("invalid image metadata")
)

// VersionError reports an image written in another format version.
type VersionError struct {
	Got  uint32 // version in the image header
	Want uint32 // newest version this build reads (FormatVersion)
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("image meta: format version %d is not supported (this crbpf reads versions %d-%d)", e.Got, MinFormatVersion, e.Want)
}

// Unwrap makes errors.Is(err, ErrVersion) true.
func (e *VersionError) Unwrap() error { return ErrVersion }

// TruncatedError reports a file shorter than the image requires.
type TruncatedError struct {
	File string // path of the file, or "image meta" for Decode input
	Want int64  // minimum size in bytes
	Got  int64  // actual size in bytes
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("%s is truncated: need at least %d bytes, have %d", e.File, e.Want, e.Got)
}

// Unwrap makes errors.Is(err, ErrTruncated) true.
func (e *TruncatedError) Unwrap() error { return ErrTruncated }

// ValidationError reports metadata that breaks an invariant or a limit.
type ValidationError struct {
	Where  string // "vma 3 [0x7f12a000-0x7f12c000]", "file 2 (fd 7)", "task", ...
	Reason string // what is wrong, e.g. "page run 0 at 0x7f12c000 (1 pages) outside the mapping"
}

func (e *ValidationError) Error() string { return "image meta: " + e.Where + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// PageCRCError reports a page whose bytes in pages.crbpf do not match the
// CRC-32C recorded in the metadata.
type PageCRCError struct {
	VMA        int    // index in Image.VMAs
	Start, End uint64 // the mapping
	Addr       uint64 // address of the page
	Want, Got  uint32 // recorded and computed CRC-32C
}

func (e *PageCRCError) Error() string {
	return fmt.Sprintf("image pages: vma %d [%#x-%#x]: page %#x: crc32c 0x%08x, want 0x%08x",
		e.VMA, e.Start, e.End, e.Addr, e.Got, e.Want)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *PageCRCError) Unwrap() error { return ErrCorrupt }

// kindError is an error with its own message that matches a sentinel (and,
// optionally, an underlying cause) with errors.Is.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// metaErr returns an error "image meta: <msg>" matching kind.
func metaErr(kind error, format string, args ...any) error {
	return &kindError{msg: "image meta: " + fmt.Sprintf(format, args...), kind: kind}
}

func invalid(where, format string, args ...any) error {
	return &ValidationError{Where: where, Reason: fmt.Sprintf(format, args...)}
}
