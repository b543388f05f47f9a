//go:build linux

package dirty

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// goABI is every value abi.go mirrors, by its kernel name.
var goABI = map[string]uint64{
	"PAGEMAP_SCAN":                pagemapScan,
	"PM_SCAN_WP_MATCHING":         pmScanWPMatching,
	"PM_SCAN_CHECK_WPASYNC":       pmScanCheckWPAsync,
	"PAGE_IS_WPALLOWED":           pageIsWPAllowed,
	"PAGE_IS_WRITTEN":             pageIsWritten,
	"PAGE_IS_FILE":                pageIsFile,
	"PAGE_IS_PRESENT":             pageIsPresent,
	"PAGE_IS_SWAPPED":             pageIsSwapped,
	"PAGE_IS_PFNZERO":             pageIsPFNZero,
	"PAGE_IS_HUGE":                pageIsHuge,
	"PAGE_IS_SOFT_DIRTY":          pageIsSoftDirty,
	"PAGE_IS_GUARD":               pageIsGuard,
	"sizeof_pm_scan_arg":          uint64(unsafe.Sizeof(pmScanArg{})),
	"sizeof_page_region":          uint64(unsafe.Sizeof(pageRegion{})),
	"UFFD_API":                    uffdAPI,
	"UFFDIO_API":                  uffdioAPI,
	"UFFDIO_REGISTER":             uffdioRegister,
	"UFFDIO_UNREGISTER":           uffdioUnregister,
	"UFFDIO_WRITEPROTECT":         uffdioWriteprotect,
	"UFFDIO_REGISTER_MODE_WP":     uffdioRegisterModeWP,
	"UFFDIO_WRITEPROTECT_MODE_WP": uffdioWriteprotectModeWP,
	"_UFFDIO_REGISTER":            uffdioRegisterNR,
	"_UFFDIO_UNREGISTER":          uffdioUnregisterNR,
	"_UFFDIO_WRITEPROTECT":        uffdioWriteprotNR,
	"_UFFDIO_API":                 uffdioAPINR,
	"UFFD_USER_MODE_ONLY":         UFFDUserModeOnly,
	"UFFD_FEATURE_WP_UNPOPULATED": uffdFeatureWPUnpopulated,
	"UFFD_FEATURE_WP_ASYNC":       uffdFeatureWPAsync,
	"sizeof_uffdio_api":           uint64(unsafe.Sizeof(uffdioAPIArg{})),
	"sizeof_uffdio_range":         uint64(unsafe.Sizeof(uffdioRange{})),
	"sizeof_uffdio_register":      uint64(unsafe.Sizeof(uffdioRegisterArg{})),
	"sizeof_uffdio_writeprotect":  uint64(unsafe.Sizeof(uffdioWriteprotectArg{})),
}

// TestABIConstants pins the values (checked once against linux-libc-dev
// 6.12 with testdata/abi.c) so that an edit of abi.go cannot change them
// silently where no C toolchain is installed.
func TestABIConstants(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skipf("values pinned for amd64 and arm64, not %s", runtime.GOARCH)
	}
	want := map[string]uint64{
		"PAGEMAP_SCAN":                0xc0606610,
		"UFFDIO_API":                  0xc018aa3f,
		"UFFDIO_REGISTER":             0xc020aa00,
		"UFFDIO_UNREGISTER":           0x8010aa01,
		"UFFDIO_WRITEPROTECT":         0xc018aa06,
		"sizeof_pm_scan_arg":          96,
		"sizeof_page_region":          24,
		"sizeof_uffdio_api":           24,
		"sizeof_uffdio_range":         16,
		"sizeof_uffdio_register":      32,
		"sizeof_uffdio_writeprotect":  24,
		"UFFD_FEATURE_WP_ASYNC":       0x8000,
		"UFFD_FEATURE_WP_UNPOPULATED": 0x2000,
		"PAGE_IS_WRITTEN":             0x2,
		"PAGE_IS_WPALLOWED":           0x1,
	}
	for name, v := range want {
		if got := goABI[name]; got != v {
			t.Errorf("%s = %#x, want %#x", name, got, v)
		}
	}
}

// TestABIMatchesHeaders compiles testdata/abi.c with the installed kernel
// headers and compares every value they define with abi.go. Set
// DIRTY_ABI_INCLUDE to a directory of newer headers (for instance the
// usr/include of an unpacked linux-libc-dev 6.12 .deb) to check the names an
// older distribution header lacks.
func TestABIMatchesHeaders(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	bin := filepath.Join(t.TempDir(), "abi")
	args := []string{"-Wall", "-o", bin}
	if inc := os.Getenv("DIRTY_ABI_INCLUDE"); inc != "" {
		multiarch := filepath.Join(inc, runtime.GOARCH+"-linux-gnu")
		if runtime.GOARCH == "amd64" {
			multiarch = filepath.Join(inc, "x86_64-linux-gnu")
		}
		args = append(args, "-isystem", inc, "-isystem", multiarch)
	}
	args = append(args, filepath.Join("testdata", "abi.c"))
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run abi: %v", err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			t.Fatalf("bad line %q", sc.Text())
		}
		v, err := strconv.ParseUint(f[1], 0, 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", sc.Text(), err)
		}
		want, ok := goABI[f[0]]
		if !ok {
			t.Errorf("abi.c prints %s, which the test does not know", f[0])
			continue
		}
		seen[f[0]] = true
		if want != v {
			t.Errorf("%s: Go %#x, C headers %#x", f[0], want, v)
		}
	}
	var missing []string
	for name := range goABI {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	t.Logf("checked %d values against the headers; not defined there: %v", len(seen), missing)
}
