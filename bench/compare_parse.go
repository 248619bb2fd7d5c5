package bench

// The parser of a peer program's output (bench/peers/*: one line per size,
// "bytes count time_us algbw_GBs busbw_GBs wrong"), checked against the
// sizes of the sweep.

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parsePeerLine parses one line of a peer program's output:
//
//	bytes count time_us algbw_GBs busbw_GBs wrong
//
// Blank lines, comments (#) and lines that do not start with a number
// (mpirun's or torch's chatter) give ok == false; a line that starts with a
// number but is not a well-formed row is an error.
func parsePeerLine(line string) (r Row, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return Row{}, false, nil
	}
	if _, err := strconv.ParseInt(f[0], 10, 64); err != nil {
		return Row{}, false, nil
	}
	bad := func(why string) (Row, bool, error) {
		return Row{}, false, fmt.Errorf("bad result line %q: %s (want: bytes count time_us algbw_GBs busbw_GBs wrong)", line, why)
	}
	if len(f) != 6 {
		return bad(fmt.Sprintf("%d fields", len(f)))
	}
	var ints [3]int64
	for i, j := range []int{0, 1, 5} {
		if ints[i], err = strconv.ParseInt(f[j], 10, 64); err != nil || ints[i] < 0 {
			return bad(fmt.Sprintf("field %d is not a count", j+1))
		}
	}
	var fl [3]float64
	for i := range fl {
		if fl[i], err = strconv.ParseFloat(f[2+i], 64); err != nil || math.IsNaN(fl[i]) || math.IsInf(fl[i], 0) || fl[i] < 0 {
			return bad(fmt.Sprintf("field %d is not a number", 3+i))
		}
	}
	r = Row{Bytes: ints[0], Count: ints[1], Type: "float32", Op: "sum", TimeUS: fl[0], AlgBW: fl[1], BusBW: fl[2], Wrong: ints[2]}
	if r.Bytes != 4*r.Count || r.Count == 0 {
		return bad(fmt.Sprintf("%d bytes is not %d float32 elements", r.Bytes, r.Count))
	}
	if r.TimeUS <= 0 {
		return bad("time is not positive")
	}
	return r, true, nil
}

// parsePeerOutput parses a peer's whole standard output and checks that it
// reported exactly the sizes of the sweep, in order. It returns the rows it
// could parse even when it also returns an error.
func parsePeerOutput(out []byte, sizes []int64) ([]Row, error) {
	var rows []Row
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		r, ok, err := parsePeerLine(sc.Text())
		if err != nil {
			return rows, err
		}
		if !ok {
			continue
		}
		if len(rows) >= len(sizes) || r.Bytes != sizes[len(rows)] {
			return rows, fmt.Errorf("reported size %d bytes after %d rows; the sweep is %v", r.Bytes, len(rows), sizes)
		}
		rows = append(rows, r)
	}
	if len(rows) < len(sizes) {
		return rows, fmt.Errorf("reported %d of %d sizes", len(rows), len(sizes))
	}
	return rows, nil
}
