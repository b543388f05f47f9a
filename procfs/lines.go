package procfs

import (
	"bytes"
	"fmt"
	"io"
)

// maxLine bounds the length of one line of a /proc text file. The longest
// real lines are maps entries: a header, then a path of up to PATH_MAX bytes
// in which every '\n' may be escaped to four bytes.
const maxLine = 1 << 20

// eachLine calls fn for every line of r (without its '\n'), numbering lines
// from 1. fn's line is only valid during the call.
func eachLine(r io.Reader, fn func(n int, line []byte) error) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return eachLineBytes(b, fn)
}

// eachLineBytes is eachLine over text already in memory. Lines end at '\n'
// only: a '\r' belongs to a path or comm. A final line without '\n' counts.
// (A bufio.Scanner here cost more than the read itself: its buffer is
// allocated and zeroed per call.)
func eachLineBytes(b []byte, fn func(n int, line []byte) error) error {
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) > maxLine {
			return fmt.Errorf("line %d: longer than %d bytes", n, maxLine)
		}
		if err := fn(n, line); err != nil {
			return err
		}
	}
	return nil
}
