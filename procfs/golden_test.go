package procfs

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenInputs lists the parser inputs in testdata/kind: every file that is
// not a .golden file. Inputs whose name starts with "err_" must fail to
// parse, all others must parse.
func goldenInputs(t testing.TB, kind string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", kind, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var in []string
	for _, p := range paths {
		if filepath.Ext(p) != ".golden" {
			in = append(in, p)
		}
	}
	if len(in) == 0 {
		t.Fatalf("no inputs in testdata/%s", kind)
	}
	return in
}

// testGolden runs parse on every input of testdata/kind and compares the
// JSON of its result, or its error, with NAME.golden beside the input.
func testGolden(t *testing.T, kind string, parse func([]byte) (any, error)) {
	for _, in := range goldenInputs(t, kind) {
		name := strings.TrimSuffix(filepath.Base(in), filepath.Ext(in))
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			v, err := parse(data)
			wantErr := strings.HasPrefix(name, "err_")
			if (err != nil) != wantErr {
				t.Errorf("parse error = %v, want error: %v", err, wantErr)
			}
			var out struct {
				Error  string `json:"error,omitempty"`
				Result any    `json:"result,omitempty"`
			}
			if err != nil {
				out.Error = err.Error()
			} else {
				out.Result = v
			}
			got, err := json.MarshalIndent(out, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden := filepath.Join(filepath.Dir(in), name+".golden")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the parse of %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", golden, in, got, want)
			}
		})
	}
}

// The views below add the derived values to the golden files, so that the
// methods are checked on the same inputs, and print states as letters.

type mappingView struct {
	Mapping
	Prot    uint32
	Len     uint64
	IsAnon  bool
	Deleted bool
	Path    string
}

type statView struct {
	*Stat
	State          string
	IsKernelThread bool
}

type statusView struct {
	*Status
	State string
}

type timerView struct {
	Timer
	SigevNotify int32
}

func TestGoldenMaps(t *testing.T) {
	testGolden(t, "maps", func(b []byte) (any, error) {
		ms, err := ParseMaps(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		vs := make([]mappingView, len(ms))
		for i, m := range ms {
			vs[i] = mappingView{m, m.Prot(), m.Len(), m.IsAnon(), m.Deleted(), m.Path()}
		}
		return vs, nil
	})
}

func TestGoldenStat(t *testing.T) {
	testGolden(t, "stat", func(b []byte) (any, error) {
		s, err := ParseStat(b)
		if err != nil {
			return nil, err
		}
		return statView{s, string(s.State), s.IsKernelThread()}, nil
	})
}

func TestGoldenStatus(t *testing.T) {
	testGolden(t, "status", func(b []byte) (any, error) {
		s, err := ParseStatus(b)
		if err != nil {
			return nil, err
		}
		return statusView{s, string(s.State)}, nil
	})
}

func TestGoldenFDInfo(t *testing.T) {
	testGolden(t, "fdinfo", func(b []byte) (any, error) {
		return ParseFDInfo(bytes.NewReader(b))
	})
}

func TestGoldenTimers(t *testing.T) {
	testGolden(t, "timers", func(b []byte) (any, error) {
		ts, err := ParseTimers(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		vs := make([]timerView, len(ts))
		for i, tm := range ts {
			vs[i] = timerView{tm, tm.SigevNotify()}
		}
		return vs, nil
	})
}

func TestGoldenAuxv(t *testing.T) {
	testGolden(t, "auxv", func(b []byte) (any, error) { return ParseAuxv(b) })
}
