package procfs

import (
	"math"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadLimitsSelf: /proc/self/limits says what getrlimit says, for every
// resource.
func TestReadLimitsSelf(t *testing.T) {
	got, err := ReadLimits(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(limitNames) {
		t.Fatalf("%d limits, want %d", len(got), len(limitNames))
	}
	for i, l := range got {
		if l.Resource != i {
			t.Fatalf("limit %d is resource %d", i, l.Resource)
		}
		var want unix.Rlimit
		if err := unix.Getrlimit(i, &want); err != nil {
			t.Fatal(err)
		}
		if l.Cur != want.Cur || l.Max != want.Max {
			t.Errorf("resource %d (%s): %d/%d, getrlimit says %d/%d", i, limitNames[i], l.Cur, l.Max, want.Cur, want.Max)
		}
	}
}

func TestParseLimits(t *testing.T) {
	in := "Limit                     Soft Limit           Hard Limit           Units     \n" +
		"Max cpu time              unlimited            unlimited            seconds   \n" +
		"Max stack size            8388608              unlimited            bytes     \n" +
		"Max nice priority         0                    0                    \n"
	got, err := ParseLimits([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Limit{{0, math.MaxUint64, math.MaxUint64}, {3, 8388608, math.MaxUint64}, {13, 0, 0}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "nonsense\n", in + "Max warp factor  1  2\n", in + "Max cpu time  x  1\n", in + "Max cpu time  1\n"} {
		if _, err := ParseLimits([]byte(bad)); err == nil {
			t.Errorf("ParseLimits(%q) succeeded", bad)
		}
	}
}
