package launch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// readLines calls fn with each line of r (without its newline), at most max
// bytes of it: a longer line is cut, its rest read and dropped, and cut says
// how many bytes were dropped. It reads to the end whatever the lines hold,
// so a child never blocks on a full pipe.
func readLines(r io.Reader, max int, fn func(line []byte, cut int)) {
	readLinesEnd(r, max, func(line []byte, cut int, _ bool) { fn(line, cut) })
}

// readLinesEnd is readLines that also says whether each line ended with a
// newline: only the last line of r can be unterminated, and on a pipe that
// means its writer stopped in the middle of it (or never ends its lines).
func readLinesEnd(r io.Reader, max int, fn func(line []byte, cut int, ended bool)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	cut := 0
	for {
		frag, err := br.ReadSlice('\n')
		end := len(frag) > 0 && frag[len(frag)-1] == '\n'
		if end {
			frag = frag[:len(frag)-1]
		}
		if room := max - len(line); room > 0 {
			n := min(room, len(frag))
			line = append(line, frag[:n]...)
			cut += len(frag) - n
		} else {
			cut += len(frag)
		}
		more := errors.Is(err, bufio.ErrBufferFull) // the line goes on
		if end || (err != nil && !more && (len(line) > 0 || cut > 0)) {
			fn(line, cut, end)
			line, cut = line[:0], 0
		}
		if err != nil && !more {
			return
		}
	}
}

// cutNote is what a cut line ends with.
func cutNote(cut int) string {
	if cut == 0 {
		return ""
	}
	return fmt.Sprintf("… (%d more bytes cut)", cut)
}
