package timeline

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// MergeStats says what Merge found.
type MergeStats struct {
	Parts    int     // part files read
	Events   int     // events written
	Torn     int     // lines dropped: not a complete event (a write cut short by a kill)
	PIDs     []int   // the processes that have events, ascending
	Problems []error // parts that could not be read, each naming its file
}

// event is one line of a part, with what sorting needs.
type event struct {
	line []byte
	key  struct {
		Ph  string  `json:"ph"`
		Pid int     `json:"pid"`
		Tid int     `json:"tid"`
		Ts  float64 `json:"ts"`
		Dur float64 `json:"dur"`
	}
}

// Merge reads the part files (written by Writer; torn or unfinished ones
// too) and writes one trace with all their events to dst, atomically
// (a temporary file renamed into place), so that dst is a complete trace
// or the old file, never half of one. Events are sorted: metadata first,
// then by process, lane and start time, a longer span before the ones it
// holds. A part that cannot be read is reported in MergeStats.Problems and
// left out; the error is about dst alone.
func Merge(dst string, parts []string) (MergeStats, error) {
	var st MergeStats
	var events []event
	for _, p := range parts {
		b, err := os.ReadFile(p)
		if err != nil {
			st.Problems = append(st.Problems, fmt.Errorf("timeline part %s: %w", p, err))
			continue
		}
		st.Parts++
		evs, torn := parseLines(b)
		events, st.Torn = append(events, evs...), st.Torn+torn
	}
	slices.SortStableFunc(events, func(a, b event) int {
		am, bm := a.key.Ph == "M", b.key.Ph == "M"
		switch {
		case am != bm:
			if am {
				return -1
			}
			return 1
		case am:
			return cmp.Compare(a.key.Pid, b.key.Pid)
		}
		return cmp.Or(cmp.Compare(a.key.Pid, b.key.Pid), cmp.Compare(a.key.Tid, b.key.Tid),
			cmp.Compare(a.key.Ts, b.key.Ts), cmp.Compare(b.key.Dur, a.key.Dur))
	})
	for _, e := range events {
		if e.key.Ph != "M" {
			st.PIDs = append(st.PIDs, e.key.Pid)
		}
	}
	st.PIDs = slices.Compact(slices.Sorted(slices.Values(st.PIDs)))
	st.Events = len(events)
	return st, writeAtomic(dst, func(out *bufio.Writer) {
		out.WriteString(header)
		for i, e := range events {
			if i > 0 {
				out.WriteByte(',')
			}
			out.WriteByte('\n')
			out.Write(e.line)
		}
		fmt.Fprintf(out, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"dmlrun timeline\",\"parts\":%d,\"torn_lines\":%d}}\n", st.Parts, st.Torn)
	})
}

// parseLines returns the events of a part, one per line, and the number of
// lines that are neither an event nor the header or trailer.
func parseLines(b []byte) (evs []event, torn int) {
	for line := range bytes.Lines(b) {
		line = bytes.TrimSpace(line)
		line = bytes.TrimSuffix(line, []byte(","))
		switch {
		case len(line) == 0, string(line) == header, line[0] == ']':
			continue
		}
		var e event
		if line[0] != '{' || !json.Valid(line) || json.Unmarshal(line, &e.key) != nil {
			torn++
			continue
		}
		e.line = line
		evs = append(evs, e)
	}
	return evs, torn
}

// writeAtomic writes what write writes to path, through a temporary file in
// the same directory renamed into place.
func writeAtomic(path string, write func(*bufio.Writer)) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("timeline %s: %w", path, err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	write(bw)
	err = bw.Flush() // the first write error, kept by bw
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("timeline %s: %w", path, err)
	}
	return nil
}
