package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/elastic"
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
func tracedComms(t *testing.T, recs []*recorder) []*elastic.Comm {
	t.Helper()
	return startCommsWith(t, len(recs), testConfig(),
		func(r int, c *elastic.CommConfig) { c.Ring.Tracer = recs[r].tracer() },
		func(r int, c *elastic.Comm) error { return alignClocks(context.Background(), c, recs[r]) })
}

func newTestRecorder(t *testing.T, name string, steps int) *recorder {
	t.Helper()
	r, err := startTimeline(TimelineOptions{Part: filepath.Join(t.TempDir(), name+".json"), PID: -1, Steps: steps}, "h", 0, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestStepLoopDoesNotAllocateWithTimeline: with every node recording a
// timeline (its compute spans, every collective and phase, flushes every
// 10 ms), steps of a ring-allreduced mlp and of a recursive-doubling
// logistic regression still allocate nothing, and the parts hold them.
func TestStepLoopDoesNotAllocateWithTimeline(t *testing.T) {
	for _, tc := range []struct{ model, phase string }{
		{"{kind: logistic, l2: 0.01}", "recursive doubling"},
		{"{kind: mlp, hidden: [256, 16]}", "reduce-scatter"}, // 9.5k parameters: above 64 KiB, the ring
	} {
		cfg, err := config.Parse([]byte(`
data: {format: synthetic, normalize: true, synthetic: {task: binary, samples: 3000, features: 20, noise: 0.5}}
model: ` + tc.model + `
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 64, steps: 2000}
`))
		if err != nil {
			t.Fatal(err)
		}
		cfg.Output.Dir = t.TempDir()
		recs := []*recorder{newTestRecorder(t, "a", 100_000), newTestRecorder(t, "b", 100_000)}
		comms := startCommsWith(t, 2, testConfig(), func(r int, c *elastic.CommConfig) { c.Ring.Tracer = recs[r].tracer() }, nil) // Resize aligns the clocks
		trs := make([]*trainer, 2)
		errs := parallel(comms, func(c *elastic.Comm) error {
			tr := newTestTrainer(cfg, quietLog)
			tr.tl, trs[c.Rank()] = recs[c.Rank()], tr
			return tr.Resize(context.Background(), c)
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		const steps = 100
		next := 0
		run := func() {
			errs := parallel(comms, func(c *elastic.Comm) error {
				sc := &stepContext{Context: context.Background()}
				for s := next; s < next+steps; s++ {
					if _, err := trs[c.Rank()].step(sc, s); err != nil {
						return err
					}
				}
				return nil
			})
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			next += steps
		}
		run() // warm up
		// As in TestStepLoopDoesNotAllocate: the runtime allocates now and
		// then on its own; an allocation per step shows in every window.
		var counts []uint64
		for range 5 {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			run()
			runtime.ReadMemStats(&after)
			counts = append(counts, after.Mallocs-before.Mallocs)
			if counts[len(counts)-1] <= 10 {
				break
			}
		}
		if slices.Min(counts) > 10 {
			t.Errorf("%s: allocations in windows of %d steps on 2 ranks with a timeline: %v", tc.model, steps, counts)
		}
		for _, tr := range trs {
			if tr.metrics != nil {
				tr.metrics.Close()
			}
		}
		for r, rec := range recs {
			rec.close(nil)
			evs := readPart(t, rec.w.Path())
			if got := countNamed(evs, "compute"); got != next {
				t.Errorf("%s: rank %d: %d compute events, want %d", tc.model, r, got, next)
			}
			if got := countNamed(evs, tc.phase); got < next {
				t.Errorf("%s: rank %d: %d %s events, want one a step (%d)", tc.model, r, got, tc.phase, next)
			}
			if countNamed(evs, "load data") != 1 || countNamed(evs, "align clocks") != 1 || countNamed(evs, "process_name") != 1 {
				t.Errorf("%s: rank %d: no load, alignment or name", tc.model, r)
			}
		}
	}
}

// TestAlignClocks: on one host the offsets are near 0 and every rank's
// trace clock agrees with the others'; a later ring keeps the first ring's
// clock, carried by its lowest aligned rank, even when rank 0 is new; a
// node without a timeline takes part and records nothing.
func TestAlignClocks(t *testing.T) {
	const tolerance = 20 * time.Millisecond // the skew of a barrier on a busy 2-core machine, with -race
	recs := []*recorder{newTestRecorder(t, "a", 10), newTestRecorder(t, "b", 10), nil, newTestRecorder(t, "d", 10)}
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
	second := []*recorder{fresh, recs[1], recs[3]}
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
			rec.close(nil)
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
		r.step(s, start, start.Add(time.Microsecond), 10)
	}
	r.ringFailed(time.Now(), fmt.Errorf("step 8: %w", errors.New("peer gone")), 8)
	r.ringReformed(time.Now(), 0, 2, 8)
	r.ringFailed(time.Now(), errNewMember, 9)
	r.close(errors.New("quorum lost"))
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
	r, err := startTimeline(TimelineOptions{Part: filepath.Join(b.TempDir(), "p.json"), Steps: 1 << 30}, "h", 0, quietLog)
	if err != nil {
		b.Fatal(err)
	}
	defer r.close(nil)
	r.aligned = true
	b.ReportAllocs()
	for i := range b.N {
		t0 := time.Now()
		r.Begin(ring.SpanAllReduce)
		r.Begin(ring.SpanRecursiveDoubling)
		r.End(ring.SpanRecursiveDoubling, uint64(i), nil)
		r.End(ring.SpanAllReduce, uint64(i), nil)
		r.step(i+1, t0, time.Now(), 128)
	}
}
