package timeline

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// part writes a part file with the given pid and events and returns its path.
func part(t *testing.T, dir string, pid int, write func(w *Writer)) string {
	t.Helper()
	w, err := Create(filepath.Join(dir, "rank-"+string(rune('0'+pid))+".json"))
	if err != nil {
		t.Fatal(err)
	}
	w.SetPID(pid)
	w.Meta(0, "process_name").Str("name", "rank").Done()
	write(w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path()
}

func TestMerge(t *testing.T) {
	full := func(w *Writer) {
		w.Complete(2, "allreduce", 3000, 1000).Done()
		w.Complete(2, "reduce-scatter", 3000, 400).Done() // nested: same start, shorter
		w.Complete(1, "compute", 1000, 2000).Done()
		w.Complete(1, "compute", 0, 900).Done() // out of order in the file
	}
	for _, tc := range []struct {
		name    string
		mangle  func(path string) // what happened to part 1
		events  int               // in the merged trace
		torn    int
		pids    []int
		problem bool
	}{
		{"intact", func(string) {}, 10, 0, []int{0, 1}, false},
		{"torn in the middle of the last event", func(p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-len(trailer)-10], 0o644)
		}, 9, 1, []int{0, 1}, false},
		{"cut after an event, no trailer", func(p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-len(trailer)], 0o644)
		}, 10, 0, []int{0, 1}, false},
		{"empty file", func(p string) { os.WriteFile(p, nil, 0o644) }, 5, 0, []int{0}, false},
		{"only the header", func(p string) { os.WriteFile(p, []byte(header), 0o644) }, 5, 0, []int{0}, false},
		{"garbage", func(p string) { os.WriteFile(p, []byte("\x00\x00\x00\n{\"ph\":"), 0o644) }, 5, 2, []int{0}, false},
		{"missing", func(p string) { os.Remove(p) }, 5, 0, []int{0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			parts := []string{part(t, dir, 0, full), part(t, dir, 1, full)}
			tc.mangle(parts[1])
			dst := filepath.Join(dir, "trace.json")
			st, err := Merge(dst, parts)
			if err != nil {
				t.Fatal(err)
			}
			if st.Events != tc.events || st.Torn != tc.torn || !reflect.DeepEqual(st.PIDs, tc.pids) || (len(st.Problems) > 0) != tc.problem {
				t.Fatalf("stats %+v, want %d events, %d torn, pids %v, problem %v", st, tc.events, tc.torn, tc.pids, tc.problem)
			}
			if tc.problem && !strings.Contains(st.Problems[0].Error(), parts[1]) {
				t.Errorf("problem %v does not name the part", st.Problems[0])
			}
			evs := readTrace(t, dst)
			if len(evs) != tc.events {
				t.Fatalf("%d events in the trace, stats say %d", len(evs), tc.events)
			}
			// Metadata first, then each process's lanes by start time, a
			// span before the ones it holds.
			var order []string
			for _, e := range evs {
				if e["pid"] == 0.0 {
					order = append(order, e["name"].(string))
				}
			}
			if got, want := strings.Join(order, " "), "process_name compute compute allreduce reduce-scatter"; got != want {
				t.Errorf("process 0's events in the order %q, want %q", got, want)
			}
			if evs[0]["ph"] != "M" || (len(tc.pids) == 2 && evs[1]["ph"] != "M") {
				t.Errorf("metadata not first: %v", evs[:2])
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".trace.json.tmp-*")); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestMergeReplacesAtomically: an existing trace is replaced whole; a
// destination that cannot be written is an error naming it, and the old
// file stays.
func TestMergeReplacesAtomically(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "trace.json")
	os.WriteFile(dst, []byte("old"), 0o644)
	p := part(t, dir, 0, func(w *Writer) { w.Instant(1, "x", 0).Done() })
	if _, err := Merge(dst, []string{p}); err != nil {
		t.Fatal(err)
	}
	if n := len(readTrace(t, dst)); n != 2 {
		t.Fatalf("%d events", n)
	}
	if _, err := Merge(filepath.Join(dir, "no", "such", "dir.json"), []string{p}); err == nil || !strings.Contains(err.Error(), "dir.json") {
		t.Fatalf("got %v", err)
	}
}
