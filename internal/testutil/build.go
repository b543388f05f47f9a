package testutil

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The build directory is shared by all tests of one test binary, so each
// target is compiled once per run (t.TempDir would be removed after the
// first test that asked for it). TestMain removes it with RemoveBuildDir.
var build struct {
	mu     sync.Mutex
	dir    string
	dirErr error
	once   map[string]*buildResult // by output name
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// buildDir returns the shared build directory, creating it (mode 0755: a
// test may run a built binary as an unprivileged user) on first use.
func buildDir() (string, error) {
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir == "" && build.dirErr == nil {
		dir, err := os.MkdirTemp("", "crbpf-testbuild-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		build.dir, build.dirErr = dir, err
	}
	return build.dir, build.dirErr
}

// RemoveBuildDir deletes what BuildC and BuildCrbpf produced. Call it from
// TestMain after m.Run.
func RemoveBuildDir() error {
	build.mu.Lock()
	defer build.mu.Unlock()
	if build.dir == "" {
		return nil
	}
	err := os.RemoveAll(build.dir)
	build.dir, build.once = "", nil
	return err
}

// buildOnce runs fn at most once per key and test binary and returns its
// result every time.
func buildOnce(key string, fn func() (string, error)) (string, error) {
	build.mu.Lock()
	if build.once == nil {
		build.once = make(map[string]*buildResult)
	}
	r := build.once[key]
	if r == nil {
		r = &buildResult{}
		build.once[key] = r
	}
	build.mu.Unlock()
	r.once.Do(func() { r.path, r.err = fn() })
	return r.path, r.err
}

// BuildC compiles the C program src (a path relative to the test's working
// directory, usually testdata/NAME.c) with gcc -O1 -g -Wall plus extraFlags
// and returns the path of the binary. It is compiled once per test binary
// and set of flags.
func BuildC(t testing.TB, src string, extraFlags ...string) string {
	t.Helper()
	abs, err := filepath.Abs(src)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(filepath.Base(abs), ".c")
	if len(extraFlags) > 0 {
		sum := sha256.Sum256([]byte(strings.Join(extraFlags, "\x00")))
		name += "-" + hex.EncodeToString(sum[:4])
	}
	key := abs + "\x00" + strings.Join(extraFlags, "\x00")
	path, err := buildOnce(key, func() (string, error) {
		dir, err := buildDir()
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, name)
		args := append([]string{"-O1", "-g", "-Wall", "-o", out, abs}, extraFlags...)
		cmd := exec.Command("gcc", args...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, b)
		}
		return out, nil
	})
	if err != nil {
		t.Fatalf("build %s: %v", src, err)
	}
	return path
}

// ModuleRoot returns the directory of the main module's go.mod, found with
// `go env GOMOD` from the test's working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := buildOnce("\x00gomod", func() (string, error) {
		b, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			return "", fmt.Errorf("go env GOMOD: %w", err)
		}
		gomod := strings.TrimSpace(string(b))
		if gomod == "" || gomod == os.DevNull {
			return "", fmt.Errorf("not inside a Go module (go env GOMOD = %q)", gomod)
		}
		return filepath.Dir(gomod), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// BuildCrbpf builds ./cmd/crbpf of this module once per test binary and
// returns the binary's path.
func BuildCrbpf(t testing.TB) string {
	t.Helper()
	root := ModuleRoot(t)
	path, err := buildOnce("\x00crbpf", func() (string, error) {
		dir, err := buildDir()
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, "crbpf")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/crbpf")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/crbpf: %v\n%s", err, b)
		}
		return out, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// Python3 returns the path of the real python3 interpreter (sys.executable,
// not a wrapper script found on PATH), so that the process the tests start
// is python itself.
func Python3(t testing.TB) string {
	t.Helper()
	path, err := buildOnce("\x00python3", func() (string, error) {
		b, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
		if err != nil {
			return "", fmt.Errorf("python3 is needed by this test: %w", err)
		}
		p := strings.TrimSpace(string(b))
		if p == "" {
			return "", fmt.Errorf("python3 did not report sys.executable")
		}
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}
