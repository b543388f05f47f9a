package writer

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkWritePages writes 64 MiB chunks of non-zero data (and, in the
// skipzero variant, half-zero data) to a pages file under b.TempDir().
// The writer is replaced every 16 chunks (1 GiB), outside the timer, to
// bound disk use.
func BenchmarkWritePages(b *testing.B) {
	const chunk = 64 << 20
	for _, bc := range []struct {
		name     string
		flags    Flags
		zeroHalf bool
	}{
		{"nonzero", 0, false},
		{"nonzero/skipzero", SkipZero, false},
		{"halfzero/skipzero", SkipZero, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			data := pattern(chunk/ps, 7)
			if bc.zeroHalf {
				for i := 0; i < len(data); i += 2 * ps {
					clear(data[i : i+ps])
				}
			}
			var w *Writer
			newWriter := func(i int) {
				if w != nil {
					w.Abort()
				}
				var err error
				if w, err = Create(filepath.Join(b.TempDir(), fmt.Sprint("img", i))); err != nil {
					b.Fatal(err)
				}
			}
			newWriter(0)
			b.SetBytes(chunk)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%16 == 15 {
					b.StopTimer()
					newWriter(i)
					b.StartTimer()
				}
				if _, err := w.WritePages(uint64(i)*chunk, data, bc.flags); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			w.Abort()
		})
	}
}
