package timeline

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readTrace parses a part or a merged trace and returns its events.
func readTrace(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct {
		TraceEvents     []map[string]any `json:"traceEvents"`
		DisplayTimeUnit string           `json:"displayTimeUnit"`
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("%s is not valid JSON: %v\n%s", path, err, b)
	}
	if tr.DisplayTimeUnit != "ms" || tr.TraceEvents == nil {
		t.Fatalf("%s: not a trace object:\n%s", path, b)
	}
	return tr.TraceEvents
}

func TestWriterEvents(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(w *Writer)
		want  []map[string]any
	}{
		{"nothing", func(w *Writer) {}, []map[string]any{}},
		{"complete with arguments", func(w *Writer) {
			w.SetPID(3)
			w.Complete(1, "compute", 1234567, 8000).Int("step", 7).Float("loss", 0.25).Str("why", "x").Done()
		}, []map[string]any{{"ph": "X", "pid": 3.0, "tid": 1.0, "name": "compute", "ts": 1234.567, "dur": 8.0,
			"args": map[string]any{"step": 7.0, "loss": 0.25, "why": "x"}}}},
		{"instant and metadata", func(w *Writer) {
			w.Meta(0, "process_name").Str("name", "rank 2 (host b, slot 0)").Done()
			w.Instant(4, "ring failed", -5).Done()
		}, []map[string]any{
			{"ph": "M", "pid": 0.0, "tid": 0.0, "name": "process_name", "args": map[string]any{"name": "rank 2 (host b, slot 0)"}},
			{"ph": "i", "pid": 0.0, "tid": 4.0, "name": "ring failed", "s": "t", "ts": -0.005}}},
		{"not finite numbers become null", func(w *Writer) {
			w.Instant(1, "x", 0).Float("nan", math.NaN()).Float("inf", math.Inf(-1)).Done()
		}, []map[string]any{{"ph": "i", "pid": 0.0, "tid": 1.0, "name": "x", "s": "t", "ts": 0.0,
			"args": map[string]any{"nan": nil, "inf": nil}}}},
		{"strings escaped", func(w *Writer) {
			w.Instant(1, "a \"quoted\" \\ name\n\t\x01", 1).Str("bad utf-8", "ok\xffé").Done()
		}, []map[string]any{{"ph": "i", "pid": 0.0, "tid": 1.0, "name": "a \"quoted\" \\ name\n\t\x01", "s": "t", "ts": 0.001,
			"args": map[string]any{"bad utf-8": "ok\uFFFDé"}}}},
		{"flushed in several writes", func(w *Writer) {
			for i := range 3 {
				w.Complete(2, "allreduce", int64(i)*1000, 500).Int("seq", int64(i)).Done()
				if err := w.Flush(); err != nil {
					panic(err)
				}
			}
		}, []map[string]any{
			{"ph": "X", "pid": 0.0, "tid": 2.0, "name": "allreduce", "ts": 0.0, "dur": 0.5, "args": map[string]any{"seq": 0.0}},
			{"ph": "X", "pid": 0.0, "tid": 2.0, "name": "allreduce", "ts": 1.0, "dur": 0.5, "args": map[string]any{"seq": 1.0}},
			{"ph": "X", "pid": 0.0, "tid": 2.0, "name": "allreduce", "ts": 2.0, "dur": 0.5, "args": map[string]any{"seq": 2.0}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := Create(filepath.Join(t.TempDir(), "parts", "rank-0.json"))
			if err != nil {
				t.Fatal(err)
			}
			readTrace(t, w.Path()) // valid from the start
			tc.write(w)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got := readTrace(t, w.Path()); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("events\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

func TestAppendMicros(t *testing.T) {
	for ns, want := range map[int64]string{0: "0.000", 1: "0.001", 999: "0.999", 1000: "1.000", 1234567: "1234.567",
		-5: "-0.005", -1234567: "-1234.567", math.MaxInt64: "9223372036854775.807", math.MinInt64: "-9223372036854775.808"} {
		if got := string(appendMicros(nil, ns)); got != want {
			t.Errorf("appendMicros(%d) = %s, want %s", ns, got, want)
		}
	}
}

func TestAppendStringCut(t *testing.T) {
	long := strings.Repeat("é", maxString) // 2 bytes each: the cut falls inside one
	var s string
	if err := json.Unmarshal(appendString(nil, long), &s); err != nil {
		t.Fatal(err)
	}
	if len(s) > maxString+len("…") || !strings.HasSuffix(s, "é…") {
		t.Errorf("cut to %d bytes, ending %q", len(s), s[len(s)-8:])
	}
}

// TestWriterValidAfterEveryFlush: the part is a valid trace after every
// flush, and holds exactly the events flushed so far.
func TestWriterValidAfterEveryFlush(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "p.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 1; i <= 50; i++ {
		w.Complete(1, "compute", int64(i)*10_000, 5_000).Int("step", int64(i)).Done()
		w.Complete(2, "allreduce", int64(i)*10_000+5_000, 4_000).Done()
		if i%7 == 0 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if got := len(readTrace(t, w.Path())); got != 2*i {
				t.Fatalf("after flushing %d steps: %d events", i, got)
			}
		}
	}
}

// TestWriterFlushesWhenFull: more events than the buffer holds reach the
// file without an explicit flush, and the buffer never grows.
func TestWriterFlushesWhenFull(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "p.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for w.Buffered() == 0 || n < 3*bufSize/64 {
		w.Complete(1, "compute", int64(n), 1).Int("step", int64(n)).Done()
		n++
		if cap(w.buf) != bufSize {
			t.Fatalf("buffer grew to %d", cap(w.buf))
		}
	}
	if got := len(readTrace(t, w.Path())); got == 0 || got >= n {
		t.Fatalf("%d of %d events in the file before Close: want some, not all", got, n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(readTrace(t, w.Path())); got != n {
		t.Fatalf("%d events after Close, want %d", got, n)
	}
}

func TestCreateDoesNotOverwrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rank-1.json")
	var paths []string
	for range 3 {
		w, err := Create(p)
		if err != nil {
			t.Fatal(err)
		}
		w.Instant(1, "x", 0).Done()
		w.Close()
		paths = append(paths, filepath.Base(w.Path()))
	}
	if want := []string{"rank-1.json", "rank-1-2.json", "rank-1-3.json"}; !reflect.DeepEqual(paths, want) {
		t.Fatalf("parts %v, want %v", paths, want)
	}
}

func TestCreateError(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if _, err := Create(filepath.Join(f, "rank-0.json")); err == nil || !strings.Contains(err.Error(), "timeline part "+f) {
		t.Fatalf("got %v, want an error naming the part", err)
	}
}

// TestWriteErrorKeptNotFatal: after a failed write the writer drops events
// and reports the first error, naming the file.
func TestWriteErrorKeptNotFatal(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "p.json"))
	if err != nil {
		t.Fatal(err)
	}
	w.f.Close() // the next write fails
	w.Instant(1, "x", 0).Done()
	if err := w.Flush(); err == nil || !strings.Contains(err.Error(), w.Path()) {
		t.Fatalf("flush: %v", err)
	}
	w.Instant(1, "y", 0).Done()
	if w.Flush() == nil || w.Err() == nil || w.Buffered() != 0 {
		t.Fatal("the error was not kept")
	}
}

// TestAppendDoesNotAllocate: recording a step's events and flushing them
// allocates nothing.
func TestAppendDoesNotAllocate(t *testing.T) {
	w, err := Create(filepath.Join(t.TempDir(), "p.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	i := int64(0)
	if n := testing.AllocsPerRun(1000, func() {
		i++
		w.Complete(1, "compute", i*1000, 500).Int("step", i).Int("rows", 64).Done()
		w.Complete(2, "allreduce", i*1000+500, 400).Int("seq", i).Done()
		if i%100 == 0 {
			w.Flush()
		}
	}); n != 0 {
		t.Fatalf("%v allocations per step", n)
	}
}
