//go:build linux

package precopy

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"
)

// TestBuffers: two buffers of the size asked for on huge-page boundaries,
// apart, writable, backed by huge pages where THP can be asked for, gone
// after Close.
func TestBuffers(t *testing.T) {
	for _, size := range []int{ChunkSize, hugePage} {
		t.Run(fmt.Sprint(size>>20, "MiB"), func(t *testing.T) { testBuffers(t, size) })
	}
}

func testBuffers(t *testing.T, size int) {
	b, err := NewBuffers(size)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := b.Chunks()
	a0 := uintptr(unsafe.Pointer(&c[0][0]))
	a1 := uintptr(unsafe.Pointer(&c[1][0]))
	if len(c[0]) != size || len(c[1]) != size || cap(c[0]) != size {
		t.Fatalf("buffer sizes %d, %d (cap %d), want %d", len(c[0]), len(c[1]), cap(c[0]), size)
	}
	if a0%hugePage != 0 || a1 != a0+uintptr(size) {
		t.Fatalf("buffers at %#x and %#x: want the first 2 MiB aligned, the second right after it", a0, a1)
	}
	c[0][size-1], c[1][0] = 7, 9
	if c[0][size-1] != 7 || c[1][0] != 9 {
		t.Fatal("buffers overlap")
	}

	thp, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		t.Fatal(err)
	}
	huge := smapsField(t, a0, "AnonHugePages:")
	t.Logf("THP %q; buffers' mapping: AnonHugePages %d kB", strings.TrimSpace(string(thp)), huge)
	if !strings.Contains(string(thp), "[never]") && huge < int64(size/1024) {
		t.Errorf("AnonHugePages %d kB, want at least %d kB (one buffer's worth)", huge, size/1024)
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if smapsField(t, a0, "Size:") != -1 {
		t.Errorf("mapping at %#x still there after Close", a0)
	}
}

func TestBufferSize(t *testing.T) {
	for _, c := range []struct {
		resident uint64
		want     int
	}{
		{0, MinBufferSize}, {1, MinBufferSize}, {MinBufferSize, MinBufferSize}, {MinBufferSize + 1, MinBufferSize + hugePage},
		{10 << 20, 10 << 20}, {ChunkSize - 1, ChunkSize}, {ChunkSize, ChunkSize}, {8 << 30, ChunkSize},
	} {
		if got := BufferSize(c.resident); got != c.want {
			t.Errorf("BufferSize(%d) = %d, want %d", c.resident, got, c.want)
		}
	}
	for _, size := range []int{0, -hugePage, hugePage + 4096, 2 * ChunkSize} {
		if b, err := NewBuffers(size); err == nil {
			b.Close()
			t.Errorf("NewBuffers(%d) did not fail", size)
		}
	}
}

// smapsField returns the kB value of field in /proc/self/smaps for the
// mapping that contains addr, or -1 when none does.
func smapsField(t *testing.T, addr uintptr, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(l, "%x-%x", &lo, &hi); n == 2 && !strings.HasSuffix(strings.Fields(l)[0], ":") {
			in = lo <= addr && addr < hi
			continue
		}
		if in && strings.HasPrefix(l, field) {
			var v int64
			fmt.Sscanf(strings.TrimPrefix(l, field), "%d", &v)
			return v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return -1
}
