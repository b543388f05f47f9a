package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/crbpf/crbpf/image"
)

// Memory policies: what a checkpoint that does not fit the budget does.
const (
	PolicyRefuse = "refuse"       // fail the checkpoint, keep what is stored
	PolicyEvict  = "evict-oldest" // drop the oldest images until it fits
)

// entry is one in-memory image.
type entry struct {
	crid    uint64
	dir     string
	bytes   uint64
	owner   int // uid of the client that made it
	pid     int
	comm    string
	created time.Time
	parent  uint64 // crid of the in-memory parent of an incremental image, 0: none
}

// store keeps images in a private directory on tmpfs (memory), by crid.
type store struct {
	dir    string
	limit  uint64 // bytes, 0: none
	policy string

	mu      sync.Mutex
	entries map[uint64]*entry
	bytes   uint64
	pending uint64 // bytes reserved by checkpoints in flight
}

func newStore(dir string, limit uint64, policy string) *store {
	return &store{dir: dir, limit: limit, policy: policy, entries: map[uint64]*entry{}}
}

// errNoRoom is returned when an image does not fit the budget.
type errNoRoom struct {
	need, used, limit uint64
	policy            string
}

func (e *errNoRoom) Error() string {
	why := "policy refuse keeps the stored images"
	if e.policy == PolicyEvict {
		why = "nothing is left to evict: images that others build on are kept"
	}
	return fmt.Sprintf("the in-memory images use %d of the %d-byte budget (--memory-limit); this checkpoint needs about %d more (%s)",
		e.used, e.limit, e.need, why)
}

// reserve makes room for an image of about need bytes: under PolicyEvict
// it drops the oldest images until it fits and returns their crids. The
// caller releases the reservation with unreserve once the image is stored
// or abandoned.
func (s *store) reserve(need uint64) (evicted []uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.limit == 0 {
		s.pending += need
		return nil, nil
	}
	for s.bytes+s.pending+need > s.limit {
		oldest := s.oldestLocked()
		if s.policy != PolicyEvict || oldest == nil {
			return evicted, &errNoRoom{need: need, used: s.bytes + s.pending, limit: s.limit, policy: s.policy}
		}
		s.removeLocked(oldest)
		evicted = append(evicted, oldest.crid)
	}
	s.pending += need
	return evicted, nil
}

func (s *store) unreserve(n uint64) {
	s.mu.Lock()
	s.pending -= min(n, s.pending)
	s.mu.Unlock()
}

// oldestLocked returns the oldest image that no other image builds on, or
// nil.
func (s *store) oldestLocked() *entry {
	var o *entry
	for _, e := range s.entries {
		if len(s.childrenLocked(e.crid)) > 0 {
			continue
		}
		if o == nil || e.crid < o.crid {
			o = e
		}
	}
	return o
}

// tmpDir is a fresh name in the store for an image being written.
func (s *store) tmpDir() string {
	return filepath.Join(s.dir, fmt.Sprintf("incoming-%d-%d", os.Getpid(), time.Now().UnixNano()))
}

// add moves the complete image directory from into the store as e.
func (s *store) add(from string, e *entry) error {
	dir := filepath.Join(s.dir, strconv.FormatUint(e.crid, 10))
	if err := os.Rename(from, dir); err != nil {
		return fmt.Errorf("keep image in memory: %w", err)
	}
	fi, err := os.Stat(filepath.Join(dir, image.PagesFile))
	if err != nil {
		return errors.Join(err, os.RemoveAll(dir))
	}
	e.dir, e.bytes = dir, uint64(fi.Size())
	s.mu.Lock()
	s.entries[e.crid] = e
	s.bytes += e.bytes
	s.mu.Unlock()
	return nil
}

func (s *store) get(crid uint64) (*entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[crid]
	return e, ok
}

// drop removes an image, unless an image kept here builds on it.
func (s *store) drop(crid uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[crid]
	if !ok {
		return fmt.Errorf("no in-memory image with crid %d", crid)
	}
	if kids := s.childrenLocked(crid); len(kids) > 0 {
		return fmt.Errorf("image %d is the parent of the incremental image(s) %v: drop those first, or save them (saved images stand alone)", crid, kids)
	}
	s.removeLocked(e)
	return nil
}

// childrenLocked returns the crids of the images whose parent is crid.
func (s *store) childrenLocked(crid uint64) []uint64 {
	var out []uint64
	for _, e := range s.entries {
		if e.parent == crid {
			out = append(out, e.crid)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func (s *store) removeLocked(e *entry) {
	delete(s.entries, e.crid)
	s.bytes -= e.bytes
	os.RemoveAll(e.dir)
}

// list returns the images sorted by crid, only those of owner unless
// owner is -1.
func (s *store) list(owner int) []entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []entry
	for _, e := range s.entries {
		if owner < 0 || e.owner == owner {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].crid < out[j].crid })
	return out
}

// usage is the number of images and their bytes.
func (s *store) usage() (int, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries), s.bytes
}
