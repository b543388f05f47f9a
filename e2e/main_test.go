package e2e

import (
	"fmt"
	"os"
	"testing"

	"github.com/crbpf/crbpf/internal/testutil"
)

func TestMain(m *testing.M) {
	if err := testutil.BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	baseline := testutil.TakeBaseline()
	code := m.Run()
	if err := baseline.Check(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: e2e left things behind:\n%v\n", err)
		code = 1
	}
	if err := testutil.RemoveBuildDir(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: remove build dir:", err)
	}
	os.Exit(code)
}
