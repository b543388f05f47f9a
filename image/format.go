package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// Layout of the fixed header at the start of meta.crbpf (all integers
// little-endian). See docs/image-format.md.
const (
	Magic      = "CRBPFIMG" // bytes 0-7
	HeaderSize = 64         // header bytes before the JSON

	offVersion  = 8  // uint32 FormatVersion
	offFlags    = 12 // uint32, 0 in version 1
	offLength   = 16 // uint64 length of the JSON in bytes
	offChecksum = 24 // [32]byte SHA-256 of the JSON
	offReserved = 56 // [8]byte, zero
)

// Encode writes img as a complete meta.crbpf: header and JSON. It refuses
// an image that fails Validate or whose JSON exceeds MaxMetaJSON, so
// everything Encode writes, Decode reads back.
func Encode(w io.Writer, img *Image) error {
	if err := img.Validate(); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false) // keep paths and names readable with jq
	if err := enc.Encode(img); err != nil {
		return fmt.Errorf("encode image meta: %w", err)
	}
	js := bytes.TrimSuffix(body.Bytes(), []byte("\n"))
	if len(js) > MaxMetaJSON {
		return fmt.Errorf("encode image meta: %d bytes of JSON exceed the limit of %d: %w",
			len(js), MaxMetaJSON, ErrInvalid)
	}
	hdr := header(js)
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write image meta: %w", err)
	}
	if _, err := w.Write(js); err != nil {
		return fmt.Errorf("write image meta: %w", err)
	}
	return nil
}

func header(js []byte) [HeaderSize]byte {
	var h [HeaderSize]byte
	copy(h[:], Magic)
	binary.LittleEndian.PutUint32(h[offVersion:], FormatVersion)
	binary.LittleEndian.PutUint32(h[offFlags:], 0)
	binary.LittleEndian.PutUint64(h[offLength:], uint64(len(js)))
	sum := sha256.Sum256(js)
	copy(h[offChecksum:], sum[:])
	return h
}

// Decode parses and validates the content of a meta.crbpf file. b is
// untrusted: checks run in this order, each before any work depending on
// it: magic (ErrNotImage), version (ErrVersion), flags and reserved bytes,
// the JSON length against MaxMetaJSON and len(b) (ErrCorrupt,
// ErrTruncated), the SHA-256 (ErrCorrupt), the number of JSON objects
// against MaxObjects, JSON decoding, and finally Validate (ErrInvalid).
// Unknown JSON fields are ignored: compatibility is decided by the version.
func Decode(b []byte) (*Image, error) {
	if len(b) < len(Magic) || string(b[:len(Magic)]) != Magic {
		n := min(len(b), len(Magic))
		return nil, metaErr(ErrNotImage, "not a crbpf image (magic %q, want %q)", b[:n], Magic)
	}
	if len(b) < HeaderSize {
		return nil, &TruncatedError{File: "image meta", Want: HeaderSize, Got: int64(len(b))}
	}
	if v := binary.LittleEndian.Uint32(b[offVersion:]); v < MinFormatVersion || v > FormatVersion {
		return nil, &VersionError{Got: v, Want: FormatVersion}
	}
	if f := binary.LittleEndian.Uint32(b[offFlags:]); f != 0 {
		return nil, metaErr(ErrCorrupt, "unknown header flags %#x", f)
	}
	if r := b[offReserved:HeaderSize]; !bytes.Equal(r, make([]byte, len(r))) {
		return nil, metaErr(ErrCorrupt, "reserved header bytes are not zero (%x)", r)
	}
	n := binary.LittleEndian.Uint64(b[offLength:])
	if n > MaxMetaJSON {
		return nil, metaErr(ErrCorrupt, "JSON length %d exceeds the limit of %d", n, MaxMetaJSON)
	}
	if want := HeaderSize + int64(n); int64(len(b)) < want {
		return nil, &TruncatedError{File: "image meta", Want: want, Got: int64(len(b))}
	} else if int64(len(b)) > want {
		return nil, metaErr(ErrCorrupt, "%d bytes after the JSON", int64(len(b))-want)
	}
	js := b[HeaderSize:]
	if sum := sha256.Sum256(js); !bytes.Equal(sum[:], b[offChecksum:offReserved]) {
		return nil, metaErr(ErrCorrupt, "checksum mismatch: header has sha256 %s, JSON has %s",
			hex.EncodeToString(b[offChecksum:offReserved]), hex.EncodeToString(sum[:]))
	}
	// encoding/json may allocate ~100 bytes per "{}" (a VMA is a 3-byte
	// object in the input): bound the objects before decoding so a crafted
	// file cannot make Decode allocate far beyond the documented caps.
	if objs := countObjects(js, MaxObjects); objs > MaxObjects {
		return nil, metaErr(ErrInvalid, "more than %d JSON objects", MaxObjects)
	}
	img := new(Image)
	if err := json.Unmarshal(js, img); err != nil {
		return nil, &kindError{msg: "image meta: decode JSON: " + err.Error(), kind: ErrCorrupt, cause: err}
	}
	if err := img.Validate(); err != nil {
		return nil, err
	}
	return img, nil
}

// countObjects counts the JSON objects ('{' outside strings) in js, stopping
// once the count exceeds limit. For well-formed JSON the count is exact;
// for malformed JSON it does not matter (json.Unmarshal checks the syntax
// before it allocates anything).
func countObjects(js []byte, limit int) int {
	n := 0
	for i := 0; i < len(js); i++ {
		switch js[i] {
		case '{':
			if n++; n > limit {
				return n
			}
		case '"':
			// Skip the string; a backslash escapes the byte after it.
			for i++; i < len(js) && js[i] != '"'; i++ {
				if js[i] == '\\' {
					i++
				}
			}
		}
	}
	return n
}
