package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
)

// TestStateTargetsSelfCheck runs the targets of TestTaskState,
// TestSharedMappings and TestPythonStateCopy in their "selfcheck" mode,
// without crbpf: each must print SELFCHECK OK and exit 0. It needs gcc and
// python3 but not root.
func TestStateTargetsSelfCheck(t *testing.T) {
	for _, sc := range []struct {
		name string
		argv func(t *testing.T) []string
	}{
		{"state", func(t *testing.T) []string { return []string{target(t, "state"), t.TempDir(), "selfcheck"} }},
		{"shared", func(t *testing.T) []string { return []string{target(t, "shared"), t.TempDir(), "selfcheck"} }},
		{"rngstate", func(t *testing.T) []string {
			return []string{testutil.Python3(t), filepath.Join("testdata", "rngstate.py"), recordsFile(t, 200), "selfcheck"}
		}},
	} {
		t.Run(sc.name, func(t *testing.T) {
			tg := testutil.StartTarget(t, sc.argv(t)...)
			tg.WaitLine(t, "SELFCHECK OK", timeout)
			if code := tg.Wait(t, timeout); code != 0 {
				t.Fatalf("exit %d\n%s", code, tg.Log())
			}
			for _, l := range tg.Lines() {
				if strings.Contains(l, "BAD") || strings.Contains(l, "FAILED") {
					t.Errorf("reported a problem: %q", l)
				}
			}
		})
	}
}
