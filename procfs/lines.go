package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxLine bounds the length of one line of a /proc text file. The longest
// real lines are maps entries: a header, then a path of up to PATH_MAX bytes
// in which every '\n' may be escaped to four bytes.
const maxLine = 1 << 20

// splitLF is a bufio.SplitFunc that splits on '\n' only. Unlike
// bufio.ScanLines it keeps a trailing '\r', which belongs to a path or comm.
func splitLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// eachLine calls fn for every line of r (without its '\n'), numbering lines
// from 1. fn's line is only valid during the call.
func eachLine(r io.Reader, fn func(n int, line []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	sc.Split(splitLF)
	n := 0
	for sc.Scan() {
		n++
		if err := fn(n, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes", n+1, maxLine)
		}
		return err
	}
	return nil
}
