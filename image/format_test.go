package image

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/meta.crbpf")

func encode(t testing.TB, img *Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, img); err != nil {
		t.Fatalf("Encode: %v", err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	img, _ := fixture()
	b := encode(t, img)
	got, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if !reflect.DeepEqual(got, img) {
		t.Fatalf("round trip changed the image:\n got %+v\nwant %+v", got, img)
	}
	if !bytes.Equal(encode(t, got), b) {
		t.Fatal("re-encoding the decoded image gives different bytes")
	}
}

func TestGolden(t *testing.T) {
	img, _ := fixture()
	path := filepath.Join("testdata", "golden", MetaFile)
	b := encode(t, img)
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./image -run TestGolden -update to create it)", err)
	}
	got, err := Decode(golden)
	if err != nil {
		t.Fatalf("Decode(golden): %v", err)
	}
	if !reflect.DeepEqual(got, img) {
		t.Errorf("Decode(golden) differs from the fixture:\n got %+v\nwant %+v", got, img)
	}
	if !bytes.Equal(b, golden) {
		t.Errorf("Encode(fixture) differs from %s: the encoding changed; if intended, bump FormatVersion when old readers cannot read it, then run with -update", path)
	}
	if string(golden[:8]) != Magic || binary.LittleEndian.Uint32(golden[8:]) != FormatVersion {
		t.Errorf("golden header %q does not start with the magic and version", golden[:16])
	}
}

// TestGoldenV1 reads an image of format version 1, written before page
// hashes, parents and zero spans existed.
func TestGoldenV1(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden", "meta-v1.crbpf"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode(version 1 golden): %v", err)
	}
	want, _ := fixture()
	want.Header.Parent, want.Header.ID, want.Header.ParentID, want.Hashes = "", "", "", nil
	for i := range want.VMAs {
		want.VMAs[i].Zero, want.VMAs[i].Inherit = nil, nil
	}
	if !reflect.DeepEqual(img, want) {
		t.Errorf("Decode(version 1 golden) differs from the fixture without the version 2 fields:\n got %+v\nwant %+v", img, want)
	}
}

// withHeader returns a meta file holding js under a header that is correct
// except for what mod changes.
func withHeader(js []byte, mod func(h []byte)) []byte {
	h := header(js)
	if mod != nil {
		mod(h[:])
	}
	return append(h[:], js...)
}

func TestDecodeErrors(t *testing.T) {
	img, _ := fixture()
	good := encode(t, img)
	js := good[HeaderSize:]
	bad := *img
	bad.Header.CRID = 0
	badJS, _ := jsonOf(&bad)

	flip := bytes.Clone(good)
	flip[HeaderSize+10] ^= 1

	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrNotImage, `magic ""`},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00rest"), ErrNotImage, "not a crbpf image"},
		{"short header", good[:40], ErrTruncated, "need at least 64 bytes, have 40"},
		{"version", withHeader(js, func(h []byte) { binary.LittleEndian.PutUint32(h[8:], 3) }), ErrVersion, "format version 3 is not supported (this crbpf reads versions 1-2)"},
		{"version 0", withHeader(js, func(h []byte) { binary.LittleEndian.PutUint32(h[8:], 0) }), ErrVersion, "format version 0 is not supported"},
		{"flags", withHeader(js, func(h []byte) { h[12] = 1 }), ErrCorrupt, "unknown header flags 0x1"},
		{"reserved", withHeader(js, func(h []byte) { h[63] = 1 }), ErrCorrupt, "reserved header bytes"},
		{"length cap", withHeader(js, func(h []byte) { binary.LittleEndian.PutUint64(h[16:], MaxMetaJSON+1) }), ErrCorrupt, "exceeds the limit"},
		{"huge length", withHeader(js, func(h []byte) { binary.LittleEndian.PutUint64(h[16:], ^uint64(0)) }), ErrCorrupt, "exceeds the limit"},
		{"truncated json", good[:len(good)-1], ErrTruncated, "image meta is truncated"},
		{"trailing bytes", append(bytes.Clone(good), '\n'), ErrCorrupt, "1 bytes after the JSON"},
		{"checksum", flip, ErrCorrupt, "checksum mismatch"},
		{"not json", withHeader([]byte("{nope"), nil), ErrCorrupt, "decode JSON"},
		{"wrong json type", withHeader([]byte(`{"vmas":{}}`), nil), ErrCorrupt, "decode JSON"},
		{"too many objects", withHeader([]byte(`{"vmas":[`+strings.Repeat("{},", MaxObjects)+`{}]}`), nil), ErrInvalid, "JSON objects"},
		{"invalid content", withHeader(badJS, nil), ErrInvalid, "image meta: header: checkpoint id is 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.in)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", got)
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error %q does not match %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q spans lines", err)
			}
		})
	}
}

func TestVersionErrorFields(t *testing.T) {
	img, _ := fixture()
	b := withHeader(encode(t, img)[HeaderSize:], func(h []byte) { binary.LittleEndian.PutUint32(h[8:], 7) })
	_, err := Decode(b)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Got != 7 || ve.Want != FormatVersion {
		t.Fatalf("error %v: want *VersionError{Got: 7, Want: %d}", err, FormatVersion)
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	img, _ := fixture()
	img.VMAs[1].Start = img.VMAs[0].Start
	var buf bytes.Buffer
	err := Encode(&buf, img)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Encode of an invalid image: %v, want ErrInvalid", err)
	}
	if buf.Len() != 0 {
		t.Errorf("Encode wrote %d bytes for an invalid image", buf.Len())
	}
}

func TestHeaderLayout(t *testing.T) {
	js := []byte(`{"x":1}`)
	h := header(js)
	sum := sha256.Sum256(js)
	want := append([]byte("CRBPFIMG\x02\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x00\x00\x00\x00"), sum[:]...)
	want = append(want, make([]byte, 8)...)
	if !bytes.Equal(h[:], want) {
		t.Fatalf("header\n got %x\nwant %x", h, want)
	}
}

func TestCountObjects(t *testing.T) {
	for _, tt := range []struct {
		js   string
		want int
	}{
		{`{}`, 1},
		{`{"a":[{},{"b":{}}]}`, 4},
		{`{"a":"{{{"}`, 1},
		{`{"a":"\"{"}`, 1},
		{`{"a":"\\","b":{}}`, 2},
		{`"unterminated \`, 0},
	} {
		if got := countObjects([]byte(tt.js), 100); got != tt.want {
			t.Errorf("countObjects(%s) = %d, want %d", tt.js, got, tt.want)
		}
	}
}
