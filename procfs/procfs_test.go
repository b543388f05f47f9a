package procfs

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMappingMethods(t *testing.T) {
	tests := []struct {
		name    string
		m       Mapping
		prot    uint32
		anon    bool
		deleted bool
		path    string
	}{
		{"unnamed anon", Mapping{Read: true, Write: true}, unix.PROT_READ | unix.PROT_WRITE, true, false, ""},
		{"heap", Mapping{Read: true, Write: true, Name: "[heap]"}, unix.PROT_READ | unix.PROT_WRITE, true, false, "[heap]"},
		{"stack", Mapping{Name: "[stack]"}, unix.PROT_NONE, true, false, "[stack]"},
		{"old thread stack", Mapping{Name: "[stack:77]"}, 0, true, false, "[stack:77]"},
		{"named anon", Mapping{Name: "[anon:my pool]"}, 0, true, false, "[anon:my pool]"},
		{"unterminated anon name", Mapping{Name: "[anon:x"}, 0, false, false, "[anon:x"},
		{"vdso", Mapping{Read: true, Exec: true, Name: "[vdso]"}, unix.PROT_READ | unix.PROT_EXEC, false, false, "[vdso]"},
		{"vvar", Mapping{Read: true, Name: "[vvar]"}, unix.PROT_READ, false, false, "[vvar]"},
		{"vsyscall", Mapping{Exec: true, Name: "[vsyscall]"}, unix.PROT_EXEC, false, false, "[vsyscall]"},
		{"file", Mapping{Read: true, Inode: 5, Name: "/bin/true"}, unix.PROT_READ, false, false, "/bin/true"},
		{"deleted file", Mapping{Inode: 5, Name: "/tmp/a b (deleted)"}, 0, false, true, "/tmp/a b"},
		{"shared anon", Mapping{Shared: true, Inode: 1027, Name: "/dev/zero (deleted)"}, 0, false, true, "/dev/zero"},
		{"sysv shm id 0", Mapping{Shared: true, Inode: 0, Name: "/SYSV00000000 (deleted)"}, 0, false, true, "/SYSV00000000"},
		{"deleted is only a suffix", Mapping{Inode: 1, Name: "/x (deleted)/y"}, 0, false, false, "/x (deleted)/y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.m.Prot(); got != tt.prot {
				t.Errorf("Prot() = %#x, want %#x", got, tt.prot)
			}
			if got := tt.m.IsAnon(); got != tt.anon {
				t.Errorf("IsAnon() = %v, want %v", got, tt.anon)
			}
			if got := tt.m.Deleted(); got != tt.deleted {
				t.Errorf("Deleted() = %v, want %v", got, tt.deleted)
			}
			if got := tt.m.Path(); got != tt.path {
				t.Errorf("Path() = %q, want %q", got, tt.path)
			}
		})
	}
	if got := (Mapping{Start: 0x1000, End: 0x3000}).Len(); got != 0x2000 {
		t.Errorf("Len() = %#x, want 0x2000", got)
	}
}

func TestParseMapsNameColumn(t *testing.T) {
	// The kernel pads the header to column 72 and adds a space, so the
	// name starts at column 73 and may begin with spaces; a header longer
	// than 72 columns is followed by two spaces.
	tests := []struct {
		name, line, want string
	}{
		{"aligned", "7f0000000000-7f0000001000 r--p 00000000 fe:00 12                         /a", "/a"},
		{"aligned leading spaces", "7f0000000000-7f0000001000 r--p 00000000 fe:00 12                           /a", "  /a"},
		{"aligned only spaces", "7f0000000000-7f0000001000 r--p 00000000 fe:00 12                           ", "  "},
		{"long header", "ffffffffff600000-ffffffffff601000 --xp 00000000 103:1c 18446744073709551615   x", " x"},
		{"unaligned", "7f0000000000-7f0000001000 r--p 00000000 fe:00 12   /a b", "/a b"},
		{"anon", "7f0000000000-7f0000001000 r--p 00000000 00:00 0 ", ""},
		{"anon without trailing space", "7f0000000000-7f0000001000 r--p 00000000 00:00 0", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseMapsLine(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if m.Name != tt.want {
				t.Errorf("Name = %q, want %q", m.Name, tt.want)
			}
		})
	}
}

func TestUnescapeName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{`a\nb`, "a\nb"},
		{`a\\b`, `a\b`},
		{`a\\nb`, `a\nb`},
		{`a\tb`, `a\tb`},
		{`trailing\`, `trailing\`},
		{"tab\tkept", "tab\tkept"},
	}
	for _, tt := range tests {
		if got := unescapeName(tt.in); got != tt.want {
			t.Errorf("unescapeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", []string{}},
		{"one", "sleep\x00", []string{"sleep"}},
		{"args", "sleep\x00100\x00", []string{"sleep", "100"}},
		{"empty arg kept", "a\x00\x00b\x00", []string{"a", "", "b"}},
		{"rewritten without NUL", "nginx: worker process", []string{"nginx: worker process"}},
		{"spaces", "sh\x00-c\x00echo a b\x00", []string{"sh", "-c", "echo a b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseCmdline([]byte(tt.in)); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePersonality(t *testing.T) {
	tests := []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{"00000000\n", 0, false},
		{"00400000\n", 0x400000, false}, // READ_IMPLIES_EXEC
		{"00040000", 0x40000, false},    // ADDR_NO_RANDOMIZE
		{"", 0, true},
		{"xyz\n", 0, true},
		{"100000000\n", 0, true},
	}
	for _, tt := range tests {
		got, err := ParsePersonality([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParsePersonality(%q) = %#x, %v; want %#x, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPagemapEntryBits(t *testing.T) {
	tests := []struct {
		name string
		e    PagemapEntry
		want [7]bool // present, swapped, file, guard, uffd-wp, exclusive, soft-dirty
	}{
		{"none", 0, [7]bool{}},
		{"present anon exclusive", 1<<63 | 1<<56 | 0x1234, [7]bool{true, false, false, false, false, true, false}},
		{"swapped", 1<<62 | 1<<55, [7]bool{false, true, false, false, false, false, true}},
		{"file", 1<<63 | 1<<61, [7]bool{true, false, true, false, false, false, false}},
		{"guard", 1 << 58, [7]bool{false, false, false, true, false, false, false}},
		{"uffd-wp", 1<<63 | 1<<57, [7]bool{true, false, false, false, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := [7]bool{tt.e.Present(), tt.e.Swapped(), tt.e.FileOrSharedAnon(), tt.e.Guard(), tt.e.UffdWP(), tt.e.Exclusive(), tt.e.SoftDirty()}
			if got != tt.want {
				t.Errorf("%#x: got %v, want %v", uint64(tt.e), got, tt.want)
			}
		})
	}
}

func TestTimerSigevNotify(t *testing.T) {
	tests := []struct {
		t    Timer
		want int32
	}{
		{Timer{Notify: "signal"}, 0},
		{Timer{Notify: "none"}, 1},
		{Timer{Notify: "thread"}, 2},
		{Timer{Notify: "signal", SigevThreadID: true}, 4},
		{Timer{Notify: "bogus"}, -1},
	}
	for _, tt := range tests {
		if got := tt.t.SigevNotify(); got != tt.want {
			t.Errorf("%+v: SigevNotify() = %d, want %d", tt.t, got, tt.want)
		}
	}
}

func TestPTEMarker(t *testing.T) {
	for _, c := range []struct {
		e    PagemapEntry
		want bool
	}{
		{0x420000000000003f, true},  // uffd-wp marker: swapped, uffd-wp, type 31, offset 1
		{0x400000000000003f, true},  // a marker without the uffd-wp bit
		{0x4000000000000021, false}, // swap device 1, offset 1: a page in swap
		{0x400000000000003c, false}, // type 28: a migration entry, a page being moved
		{0x830000000027fa3f, false}, // present
		{0x000000000000001f, false}, // not swapped
	} {
		if got := c.e.PTEMarker(); got != c.want {
			t.Errorf("%#x: PTEMarker %v, want %v", uint64(c.e), got, c.want)
		}
	}
}
