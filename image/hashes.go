package image

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// PageHash returns the 64-bit xxHash of p, the value HashesFile holds for
// each page slot. An incremental checkpoint takes a page from its parent
// only when both this hash and the CRC-32C match.
func PageHash(p []byte) uint64 { return xxhash.Sum64(p) }

// EncodeHashes returns the content of HashesFile for hashes and its
// description.
func EncodeHashes(hashes []uint64) ([]byte, *Hashes) {
	b := make([]byte, 8*len(hashes))
	for i, h := range hashes {
		binary.LittleEndian.PutUint64(b[8*i:], h)
	}
	sum := sha256.Sum256(b)
	return b, &Hashes{Pages: uint64(len(hashes)), SHA256: hex.EncodeToString(sum[:])}
}

// ReadHashes reads and checks dir/HashesFile against img.Hashes: its size
// and SHA-256. The result has one hash per page slot of PagesFile (slot i at
// data offset i·PageSize).
func ReadHashes(dir string, img *Image) ([]uint64, error) {
	if img.Hashes == nil {
		return nil, &kindError{msg: fmt.Sprintf("%s: the image has no page hashes (written by an older crbpf)", dir), kind: ErrInvalid}
	}
	path := filepath.Join(dir, HashesFile)
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &kindError{msg: fmt.Sprintf("%s: %s is missing", dir, HashesFile), kind: ErrTruncated, cause: err}
	} else if err != nil {
		return nil, err
	}
	if want := int64(8 * img.Hashes.Pages); fi.Size() < want {
		return nil, &TruncatedError{File: path, Want: want, Got: fi.Size()}
	} else if fi.Size() > want {
		return nil, metaErr(ErrCorrupt, "%s: %d bytes, want %d", path, fi.Size(), want)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != img.Hashes.SHA256 {
		return nil, metaErr(ErrCorrupt, "%s: checksum mismatch (sha256 %x, the image meta says %s)", path, sum, img.Hashes.SHA256)
	}
	out := make([]uint64, img.Hashes.Pages)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return out, nil
}
