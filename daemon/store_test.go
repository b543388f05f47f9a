package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/crbpf/crbpf/image"
)

// fakeImage makes a directory that looks like a written image of n bytes.
func fakeImage(t *testing.T, s *store, n int) string {
	t.Helper()
	dir := s.tmpDir()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, image.PagesFile), make([]byte, n), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStoreBudget(t *testing.T) {
	for _, tc := range []struct {
		policy  string
		evicted []uint64
		err     bool
	}{
		{PolicyRefuse, nil, true},
		{PolicyEvict, []uint64{1}, false},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			s := newStore(t.TempDir(), 10000, tc.policy)
			for i, n := range []int{4000, 4000} {
				if _, err := s.reserve(uint64(n)); err != nil {
					t.Fatal(err)
				}
				if err := s.add(fakeImage(t, s, n), &entry{crid: uint64(i + 1), owner: 1000}); err != nil {
					t.Fatal(err)
				}
				s.unreserve(uint64(n))
			}
			if n, b := s.usage(); n != 2 || b != 8000 {
				t.Fatalf("usage %d images, %d bytes; want 2, 8000", n, b)
			}
			ev, err := s.reserve(6000)
			if !reflect.DeepEqual(ev, tc.evicted) {
				t.Errorf("evicted %v, want %v", ev, tc.evicted)
			}
			var nr *errNoRoom
			if tc.err != errors.As(err, &nr) {
				t.Errorf("reserve: %v, want an error: %v", err, tc.err)
			}
			if tc.err {
				if n, _ := s.usage(); n != 2 {
					t.Errorf("refused, yet %d images left", n)
				}
				return
			}
			if _, ok := s.get(1); ok {
				t.Errorf("crid 1 still there after eviction")
			}
			if _, err := os.Stat(filepath.Join(s.dir, "1")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("evicted image directory still there: %v", err)
			}
			// A reservation counts until released.
			if _, err := s.reserve(6000); err == nil {
				t.Errorf("a second 6000-byte reservation fit in a 10000-byte budget")
			}
		})
	}
}

func TestStoreListOwner(t *testing.T) {
	s := newStore(t.TempDir(), 0, PolicyRefuse)
	for i, owner := range []int{1000, 0, 1000} {
		if err := s.add(fakeImage(t, s, 4096), &entry{crid: uint64(10 - i), owner: owner}); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	for _, e := range s.list(1000) {
		got = append(got, e.crid)
	}
	if !reflect.DeepEqual(got, []uint64{8, 10}) {
		t.Errorf("list(1000) = %v, want [8 10] (its own, by crid)", got)
	}
	if n := len(s.list(-1)); n != 3 {
		t.Errorf("list(-1) has %d images, want 3", n)
	}
	if s.drop(9) != nil || s.drop(9) == nil {
		t.Errorf("drop(9) twice: want success then an error")
	}
}

// TestStoreChains: an image that another builds on is neither dropped nor
// evicted; once its children are gone it is.
func TestStoreChains(t *testing.T) {
	s := newStore(t.TempDir(), 3*4096, PolicyEvict)
	for _, e := range []*entry{{crid: 1}, {crid: 2, parent: 1}, {crid: 3, parent: 2}} {
		tmp := s.tmpDir()
		if err := os.MkdirAll(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, image.PagesFile), make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.add(tmp, e); err != nil {
			t.Fatal(err)
		}
	}
	err := s.drop(1)
	if err == nil || !strings.Contains(err.Error(), "image 1 is the parent of the incremental image(s) [2]") {
		t.Errorf("drop(1) with a child: %v", err)
	}
	// Making room evicts the one image nothing builds on, then its parent.
	ev, err := s.reserve(2 * 4096)
	if err != nil || !reflect.DeepEqual(ev, []uint64{3, 2}) {
		t.Errorf("reserve: evicted %v (%v), want [3 2]", ev, err)
	}
	if err := s.drop(1); err != nil {
		t.Errorf("drop(1) without children: %v", err)
	}
}
