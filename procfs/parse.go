package procfs

import (
	"fmt"
	"strconv"
	"strings"
)

// fieldParser parses numeric fields and keeps the first error, so that a
// parser can convert many fields and check once.
type fieldParser struct {
	err error
}

func (p *fieldParser) uint(what, s string, base, bits int) uint64 {
	if p.err != nil {
		return 0
	}
	v, err := strconv.ParseUint(s, base, bits)
	if err != nil {
		p.err = fmt.Errorf("%s: %w", what, err)
	}
	return v
}

func (p *fieldParser) int(what, s string, base, bits int) int64 {
	if p.err != nil {
		return 0
	}
	v, err := strconv.ParseInt(s, base, bits)
	if err != nil {
		p.err = fmt.Errorf("%s: %w", what, err)
	}
	return v
}

// ints parses a list of decimal ints separated by spaces or tabs.
func (p *fieldParser) ints(what, s string) []int {
	fs := strings.Fields(s)
	if p.err != nil || len(fs) == 0 {
		return nil
	}
	out := make([]int, 0, len(fs))
	for _, f := range fs {
		out = append(out, int(p.int(what, f, 10, 32)))
	}
	if p.err != nil {
		return nil
	}
	return out
}
