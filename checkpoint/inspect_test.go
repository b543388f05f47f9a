package checkpoint

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crbpf/crbpf/image"
	"github.com/crbpf/crbpf/procfs"
)

// TestVMAReader checks that reading the mappings again gives what
// classifying them afresh gives, whatever the caller did with an earlier
// result, and that a mapped file replaced since the last read is refused
// although the mappings are otherwise unchanged.
func TestVMAReader(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "sleeper")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	pd, err := procfs.OpenDir(pid)
	if err != nil {
		t.Fatal(err)
	}
	defer pd.Close()
	fresh := func() []image.VMA {
		t.Helper()
		maps, err := procfs.ReadMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		vmas, err := classifyVMAs(pid, maps)
		if err != nil {
			t.Fatal(err)
		}
		return vmas
	}
	// Until the program sleeps its loader still maps things.
	deadline := time.Now().Add(10 * time.Second)
	for {
		maps, err := procfs.ReadMaps(pid)
		if err == nil && strings.Contains(mapsOf(maps), bin) && procStateSleeping(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not settle: %v", bin, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var r vmaReader
	for i := range 3 {
		got, err := r.read(pd)
		if want := fresh(); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("read %d: %v (%v), want %v", i, got, err, want)
		}
		for j := range got { // the caller's to fill in, as the freeze does
			got[j].Path = "scribbled"
			got[j].Pages = append(got[j].Pages, image.PageRun{Addr: got[j].Start})
		}
	}
	// Replace the program file: the mapped one is now unlinked.
	if err := os.WriteFile(bin+".new", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	_, err = r.read(pd)
	var ue *UnsupportedError
	if !errors.As(err, &ue) || !strings.Contains(ue.Why, "deleted") {
		t.Errorf("read after the mapped file was replaced: %v, want it refused as deleted", err)
	}
}

func mapsOf(ms []procfs.Mapping) string {
	var names []string
	for _, m := range ms {
		names = append(names, m.Name)
	}
	return strings.Join(names, "\n")
}

func procStateSleeping(pid int) bool {
	st, err := procfs.ReadStatus(pid)
	return err == nil && st.State == 'S'
}
