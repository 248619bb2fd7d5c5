package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/dmlrun/dmlrun/config"
)

func testTrainers(t *testing.T, n int, yaml string) []*trainer {
	t.Helper()
	trs, err := startTrainers(t, n, yaml)
	if err != nil {
		t.Fatal(err)
	}
	return trs
}

// startTrainers starts n trainers of the job yaml over TCP, or returns why
// they could not start.
func startTrainers(t *testing.T, n int, yaml string) ([]*trainer, error) {
	t.Helper()
	return startTrainersOn(t, startComms(t, n, testConfig()), yaml)
}

// startTrainersOn starts a trainer of the job yaml on each of comms.
func startTrainersOn(t *testing.T, comms []*Comm, yaml string) ([]*trainer, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return startTrainersOf(t, comms, cfg)
}

// startTrainersOf starts a trainer of the job cfg on each of comms, with
// its outputs in a new temporary directory.
func startTrainersOf(t *testing.T, comms []*Comm, cfg *config.Config) ([]*trainer, error) {
	t.Helper()
	cp := *cfg
	cfg = &cp
	cfg.Output.Dir = t.TempDir()
	n := len(comms)
	members := make([]Member, n)
	for r := range members {
		members[r] = Member{Name: fmt.Sprint("m", r), Meta: Meta{Host: "h", Slot: r}}
	}
	trs := make([]*trainer, n)
	errs := parallel(comms, func(c *Comm) error {
		var err error
		w := &worker{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil)), comm: c, members: members, prom: newPromMetrics()}
		w.prom.ring(c, 0) // metrics on: the step loop must not allocate with them either
		trs[c.Rank()], err = newTrainer(context.Background(), w)
		return err
	})
	t.Cleanup(func() {
		for _, tr := range trs {
			if tr != nil && tr.metrics != nil {
				tr.metrics.Close()
			}
		}
	})
	return trs, errors.Join(errs...)
}

// TestStepLoopDoesNotAllocate runs steps of logistic regression and of an
// mlp on two ranks over TCP, with Prometheus metrics on, and counts heap
// allocations; also with class weights and resampled epochs.
func TestStepLoopDoesNotAllocate(t *testing.T) {
	for _, c := range []struct{ model, resample, search string }{
		{"{kind: logistic, l2: 0.01}", "", ""},
		{"{kind: mlp, hidden: [16, 8]}", "", ""},
		{"{kind: logistic, class_weight: balanced}", "over", ""},
		{"{kind: mlp, hidden: [8], class_weight: {0: 1, 1: 3}}", "under", ""},
		{"{kind: logistic}", "", "{optimizer.lr: [0.01, 0.1], optimizer.kind: [sgd, adam], model.l2: [0, 0.01]}"},
	} {
		model := c.model + " resample " + c.resample + " search " + c.search
		search, val := "", ""
		if c.search != "" {
			search, val = "search: "+c.search, ", validation_fraction: 0.1"
		}
		trs := testTrainers(t, 2, `
data: {format: synthetic, normalize: true, resample: "`+c.resample+`", synthetic: {task: binary, samples: 5000, features: 20, noise: 0.5}}
model: `+c.model+`
optimizer: {kind: adam, lr: 0.01}
training: {batch_size: 64, steps: 2000`+val+`}
`+search+`
`)
		if (c.resample != "") != (trs[0].resample != nil) {
			t.Fatalf("%s: resampler %v", model, trs[0].resample)
		}
		const warm, steps = 20, 200
		start, done := make(chan int), make(chan error)
		var wg sync.WaitGroup
		for _, tr := range trs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sc := &stepContext{Context: context.Background()}
				for from := range start {
					var err error
					for s := from; s < from+steps && err == nil; s++ {
						_, err = tr.step(sc, s)
					}
					done <- err
				}
			}()
		}
		run := func(from int) {
			for range trs {
				start <- from
			}
			for range trs {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
		}
		run(0) // warm up: first epoch permutations, buffers, connections
		// MemStats counts the whole process: the runtime itself allocates
		// now and then (a new thread when a rank sleeps in ppoll on a busy
		// machine). An allocation per step shows in every window, runtime
		// noise does not: pass on the first quiet window.
		var counts []uint64
		from := warm + steps
		for range 5 {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			run(from)
			runtime.ReadMemStats(&after)
			from += steps
			counts = append(counts, after.Mallocs-before.Mallocs)
			if counts[len(counts)-1] <= 10 {
				break
			}
		}
		close(start)
		wg.Wait()
		if slices.Min(counts) > 10 {
			t.Errorf("%s: allocations in windows of %d steps on 2 ranks: %v", model, steps, counts)
		}
		for _, tr := range trs { // the hooks did run
			if got, want := testutil.ToFloat64(tr.w.prom.steps), float64(from-warm); got != want {
				t.Errorf("%s: rank %d: dmlrun_steps_total %v after %v steps", model, tr.comm().Rank(), got, want)
			}
		}
	}
}
