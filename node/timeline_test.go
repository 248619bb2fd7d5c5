package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/jobtrace"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// countEvents counts the events named name in the timeline part at path.
func countEvents(t *testing.T, path, name string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), `"name":"`+name+`","`) // not a lane's name (`"name":"compute"}`)
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
		recs := make([]*jobtrace.Recorder, 2)
		for i := range recs {
			r, err := jobtrace.Start(jobtrace.Options{Part: filepath.Join(t.TempDir(), "part.json"), PID: -1, Steps: 100_000}, "h", 0, quietLog)
			if err != nil {
				t.Fatal(err)
			}
			recs[i] = r
		}
		comms := startCommsWith(t, 2, testConfig(), func(r int, c *elastic.CommConfig) { c.Ring.Tracer = recs[r].Tracer() }, nil) // Resize aligns the clocks
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
			rec.Close(nil)
			if got := countEvents(t, rec.Path(), "compute"); got != next {
				t.Errorf("%s: rank %d: %d compute events, want %d", tc.model, r, got, next)
			}
			if got := countEvents(t, rec.Path(), tc.phase); got < next {
				t.Errorf("%s: rank %d: %d %s events, want one a step (%d)", tc.model, r, got, tc.phase, next)
			}
			if countEvents(t, rec.Path(), "load data") != 1 || countEvents(t, rec.Path(), "align clocks") != 1 || countEvents(t, rec.Path(), "process_name") != 1 {
				t.Errorf("%s: rank %d: no load, alignment or name", tc.model, r)
			}
		}
	}
}
