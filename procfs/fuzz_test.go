package procfs

import (
	"bytes"
	"os"
	"testing"
)

// addSeeds adds every input of testdata/kind to the fuzz corpus.
func addSeeds(f *testing.F, kind string) {
	for _, p := range goldenInputs(f, kind) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

func FuzzParseMaps(f *testing.F) {
	addSeeds(f, "maps")
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMaps(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.End < m.Start {
				t.Fatalf("mapping %+v ends before it starts", m)
			}
			_, _, _, _, _ = m.Prot(), m.Len(), m.IsAnon(), m.Deleted(), m.Path()
		}
	})
}

func FuzzParseStat(f *testing.F) {
	addSeeds(f, "stat")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err != nil {
			return
		}
		if len(s.Comm) > len(b) {
			t.Fatalf("comm %q longer than the input", s.Comm)
		}
	})
}

func FuzzParseStatus(f *testing.F) {
	addSeeds(f, "status")
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseStatus(b); err != nil {
			return
		}
	})
}

func FuzzParseFDInfo(f *testing.F) {
	addSeeds(f, "fdinfo")
	f.Fuzz(func(t *testing.T, b []byte) {
		fd, err := ParseFDInfo(bytes.NewReader(b))
		if err != nil {
			return
		}
		if fd.Cloexec != (fd.Flags&0o2000000 != 0) {
			t.Fatalf("Cloexec %v for flags %#o", fd.Cloexec, fd.Flags)
		}
	})
}

func FuzzParseTimers(f *testing.F) {
	addSeeds(f, "timers")
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, err := ParseTimers(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, tm := range ts {
			_ = tm.SigevNotify()
		}
	})
}

func FuzzParseAuxv(f *testing.F) {
	addSeeds(f, "auxv")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseAuxv(b)
		if err != nil {
			return
		}
		if len(v) > 0 && (len(v)%2 != 0 || v[len(v)-2] != AT_NULL) {
			t.Fatalf("auxv %v does not end with AT_NULL", v)
		}
		if len(v)*8 > len(b) {
			t.Fatalf("auxv of %d words from %d bytes", len(v), len(b))
		}
	})
}
