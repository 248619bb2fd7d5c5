package jobtrace

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/elastic/elastictest"
	"github.com/dmlrun/dmlrun/ring"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// traceEvent is an event of a part, as a test reads it.
type traceEvent struct {
	Ph   string         `json:"ph"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Name string         `json:"name"`
	Ts   float64        `json:"ts"`
	Dur  float64        `json:"dur"`
	Args map[string]any `json:"args"`
}

func readPart(t *testing.T, path string) []traceEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tr struct{ TraceEvents []traceEvent }
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return tr.TraceEvents
}

func countNamed(evs []traceEvent, name string) int {
	n := 0
	for _, e := range evs {
		if e.Name == name {
			n++
		}
	}
	return n
}

// tracedComms connects n ranks over TCP, each with its own recorder as the
// ring's tracer (nil where recs[r] is nil), and aligns their clocks.
func tracedComms(t *testing.T, recs []*Recorder) []*elastic.Comm {
	t.Helper()
	return elastictest.CommsWith(t, len(recs), elastictest.Config(),
		func(r int, c *elastic.CommConfig) { c.Ring.Tracer = recs[r].Tracer() },
		func(r int, c *elastic.Comm) error { return AlignClocks(context.Background(), c, recs[r]) })
}

func newTestRecorder(t *testing.T, name string, steps int) *Recorder {
	t.Helper()
	r, err := Start(Options{Part: filepath.Join(t.TempDir(), name+".json"), PID: -1, Steps: steps}, "h", 0, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAlignClocks: on one host the offsets are near 0 and every rank's
// trace clock agrees with the others'; a later ring keeps the first ring's
// clock, carried by its lowest aligned rank, even when rank 0 is new; a
// node without a timeline takes part and records nothing.
func TestAlignClocks(t *testing.T) {
	const tolerance = 20 * time.Millisecond // the skew of a barrier on a busy 2-core machine, with -race
	recs := []*Recorder{newTestRecorder(t, "a", 10), newTestRecorder(t, "b", 10), nil, newTestRecorder(t, "d", 10)}
	tracedComms(t, recs)
	now := time.Now()
	ref := recs[0].ts(now)
	for r, rec := range recs {
		if rec == nil {
			continue
		}
		if !rec.aligned {
			t.Fatalf("rank %d not aligned", r)
		}
		if d := time.Duration(rec.ts(now) - ref); d.Abs() > tolerance {
			t.Errorf("rank %d: trace clock %v from rank 0's", r, d)
		}
	}
	if d := time.Duration(ref); d < 0 || d > time.Minute {
		t.Errorf("trace time %v at the end of the alignment, want it to start near 0", d)
	}

	// A new ring: a fresh node (never aligned) at rank 0, the others.
	fresh := newTestRecorder(t, "e", 10)
	second := []*Recorder{fresh, recs[1], recs[3]}
	tracedComms(t, second)
	now = time.Now()
	if d := time.Duration(fresh.ts(now) - recs[1].ts(now)); d.Abs() > tolerance {
		t.Errorf("the new rank 0's trace clock is %v from the old clock", d)
	}
	if d := time.Duration(fresh.ts(now)); d < 0 || d > time.Minute {
		t.Errorf("the new rank 0's trace time is %v: not the first ring's clock", d)
	}
	for _, rec := range append(recs, fresh) {
		if rec != nil {
			rec.Close(nil)
		}
	}
	evs := readPart(t, fresh.w.Path())
	for _, e := range evs {
		if e.Name == "align clocks" {
			if e.Args["anchor rank"] != 1.0 {
				t.Errorf("anchor %v, want rank 1 (the lowest already aligned)", e.Args["anchor rank"])
			}
			if off := e.Args["offset us"].(float64); off > float64(tolerance.Microseconds()) || off < -float64(tolerance.Microseconds()) {
				t.Errorf("offset %v us on one host", off)
			}
		}
	}
	if countNamed(evs, "allreduce")+countNamed(evs, "barrier")+countNamed(evs, "allgather") != 0 {
		t.Errorf("the alignment's own collectives were recorded: %v", evs)
	}
}

func TestInt64AsFloats(t *testing.T) {
	for _, x := range []int64{0, 1, -1, 1 << 26, 1<<26 - 1, 1765432101234567891, -1765432101234567891, 1<<62 + 12345} {
		v := make([]float64, 2)
		putInt64(v, x)
		if got := getInt64(v); got != x {
			t.Errorf("%d came back as %d", x, got)
		}
	}
}

// TestRecorderCapAndRecovery: the first Steps steps are recorded, then a
// marker, then no more step events; ring changes go on being recorded, and
// a recovery in progress at the end is closed as unfinished.
func TestRecorderCapAndRecovery(t *testing.T) {
	r := newTestRecorder(t, "cap", 5)
	r.aligned = true
	r.w.SetPID(7)
	start := time.Now()
	for s := 1; s <= 8; s++ {
		r.Begin(0)
		r.End(1, uint64(s), nil)
		r.Step(s, start, start.Add(time.Microsecond), 10)
	}
	r.RingFailed(time.Now(), fmt.Errorf("step 8: %w", errors.New("peer gone")), 8)
	r.RingReformed(time.Now(), 0, 2, 8)
	r.RingFailed(time.Now(), elastic.ErrMemberJoined, 9)
	r.Close(errors.New("quorum lost"))
	evs := readPart(t, r.w.Path())
	names := map[string]int{}
	for _, e := range evs {
		names[e.Name]++
		if e.Pid != 7 {
			t.Errorf("event %v: pid %d", e, e.Pid)
		}
	}
	want := map[string]int{"compute": 5, "allreduce": 5, "timeline step cap reached": 1, "ring failed": 1, "re-form ring": 1,
		"node joining": 1, "recovery (unfinished)": 1, "exit": 1}
	for k, v := range want {
		if names[k] != v {
			t.Errorf("%d %q events, want %d (all: %v)", names[k], k, v, names)
		}
	}
}

// BenchmarkRecorderStep is what a timeline adds to a step: the allreduce
// and its phase (as the ring reports them), the compute span, and the
// share of a flush every 10 ms.
func BenchmarkRecorderStep(b *testing.B) {
	r, err := Start(Options{Part: filepath.Join(b.TempDir(), "p.json"), Steps: 1 << 30}, "h", 0, quietLog)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(nil)
	r.aligned = true
	b.ReportAllocs()
	for i := range b.N {
		t0 := time.Now()
		r.Begin(ring.SpanAllReduce)
		r.Begin(ring.SpanRecursiveDoubling)
		r.End(ring.SpanRecursiveDoubling, uint64(i), nil)
		r.End(ring.SpanAllReduce, uint64(i), nil)
		r.Step(i+1, t0, time.Now(), 128)
	}
}
