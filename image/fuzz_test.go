package image

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode. Properties: it never panics;
// whatever it accepts, Encode accepts (Decode and Encode agree on what an
// image is), and decoding and encoding again gives the same bytes.
//
// The seeds are valid encodings; most mutations break the checksum, so the
// seeds also include bodies whose header is recomputed by the target
// itself: inputs starting with "JSON" are taken as a JSON body and wrapped
// in a correct header, which lets the fuzzer explore the JSON decoding and
// validation paths.
func FuzzDecode(f *testing.F) {
	// The realistic fixture (the golden image) as a whole meta file.
	img, _ := fixture()
	var b bytes.Buffer
	if err := Encode(&b, img); err != nil {
		f.Fatal(err)
	}
	f.Add(b.Bytes())
	// Bare JSON bodies, wrapped in a correct header by the target, reach
	// decoding and validation. They are hand-written and small: the fuzzer
	// minimizes every input that finds new coverage, trying O(len²)
	// candidates (for up to -fuzzminimizetime, 60s by default), each a
	// full decode; with bodies of a few KiB a short run would do little
	// else.
	for _, js := range []string{
		`{"header":{"crid":2,"parent_crid":1,"arch":"amd64","time":"2026-11-26T23:30:01Z"},` +
			`"vmas":[{"start":4096,"end":16384,"kind":"anon","pages":[{"addr":8192,"npages":2,"data_off":4096,"crc":[1,2]}]},` +
			`{"start":16384,"end":20480,"kind":"vdso","pages":[{"addr":16384,"npages":1,"data_off":0,"crc":[3]}]}],` +
			`"task":{"regs":"` + strings.Repeat("A", AMD64RegsSize*4/3) + `"},"files":[{"fd":0,"kind":"stdio"},{"fd":3,"kind":"regular","path":"/x"}]}`,
		`{"header":{"crid":1,"arch":"arm64"},"mm":{"auxv":[6,4096,0,0]},"vmas":[{"start":4096,"end":8192,"kind":"file","path":"/bin/x","offset":4096}],` +
			`"task":{"sigactions":[{"signo":2}],"pending":[{"raw":"` + strings.Repeat("A", 171) + `="}],"rlimits":[{"resource":7}],"itimers":[{"which":0}]},"stats":{"rounds":[{}]}}`,
	} {
		f.Add(append([]byte("JSON"), js...))
	}
	f.Add([]byte(Magic))

	f.Fuzz(func(t *testing.T, in []byte) {
		if js, ok := bytes.CutPrefix(in, []byte("JSON")); ok {
			h := header(js)
			in = append(h[:], js...)
		}
		img, err := Decode(in)
		if err != nil {
			if img != nil {
				t.Fatalf("Decode returned an image and the error %v", err)
			}
			return
		}
		var out, out2 bytes.Buffer
		if err := Encode(&out, img); err != nil {
			t.Fatalf("Decode accepted an image that Encode rejects: %v", err)
		}
		img2, err := Decode(out.Bytes())
		if err != nil {
			t.Fatalf("re-encoded image does not decode: %v", err)
		}
		// Compare encodings, not values: JSON does not keep the
		// difference between nil and empty slices or the *time.Location.
		if err := Encode(&out2, img2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), out2.Bytes()) {
			t.Fatalf("encoding is not stable across a round trip:\n%s\n%s", out.Bytes()[HeaderSize:], out2.Bytes()[HeaderSize:])
		}
	})
}
