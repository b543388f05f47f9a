// Package image owns the on-disk format of a crbpf checkpoint image: the
// metadata model (types.go), its encoding in meta.crbpf, the validation of
// everything read back, and the checks of the page data in pages.crbpf.
//
// An image is a directory holding two files:
//
//	meta.crbpf   64-byte binary header + JSON encoding of Image
//	pages.crbpf  raw page bytes; each PageRun's pages start at its DataOff,
//	             a multiple of PageSize, so restore can pread them directly
//	             into the new process
//
// docs/image-format.md is the normative description of both files.
//
// # Invariants
//
// Decode and Load are the boundary for untrusted input: every length read
// from a file is capped before anything is allocated for it, the JSON is
// checksummed, and an Image they return has passed Validate, so callers may
// rely on: VMAs sorted, page aligned and disjoint; every PageRun inside its
// VMA, sorted, with one CRC per page and a page-aligned data range that no
// other run shares; files sorted by fd; every count within the Max* limits.
// Load additionally guarantees pages.crbpf is long enough for every run.
// Only Verify reads the page bytes and checks their CRC-32C.
//
// Encode validates too: it refuses to write an image that Decode would
// reject.
//
// # Errors
//
// Errors match one of ErrNotImage, ErrVersion, ErrCorrupt, ErrTruncated or
// ErrInvalid with errors.Is; the typed errors VersionError, TruncatedError,
// ValidationError and PageCRCError carry the details. Messages are single
// lines naming the mapping, run, page or fd at fault.
//
// # Lifecycle
//
// The package holds no open files: Load and Verify open and close what they
// read; Encode writes to a caller-owned io.Writer. Writing an image directory
// safely (temporary directory, fsync, rename) is package writer's job.
// An *Image is plain data and is not safe for concurrent mutation.
package image
