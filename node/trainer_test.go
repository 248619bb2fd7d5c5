package node

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/dmlrun/dmlrun/config"
	"github.com/dmlrun/dmlrun/elastic"
	"github.com/dmlrun/dmlrun/jobmetrics"
	"github.com/dmlrun/dmlrun/jobprogress"
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
func startTrainersOn(t *testing.T, comms []*elastic.Comm, yaml string) ([]*trainer, error) {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return startTrainersOf(t, comms, cfg)
}

// newTestTrainer is a trainer of cfg as Run makes one, without a Group:
// Resize on a communicator starts it, as on a Group's first ring.
func newTestTrainer(cfg *config.Config, log *slog.Logger) *trainer {
	return &trainer{cfg: cfg, base: log, log: log, progress: new(jobprogress.Progress)}
}

// runOn runs tr on c to the end, as a Group does when no member fails.
func runOn(ctx context.Context, tr *trainer, c *elastic.Comm) (*Result, error) {
	for {
		err := tr.stepOnce(ctx, c)
		if errors.Is(err, elastic.ErrStop) {
			return tr.result, c.Barrier(ctx)
		}
		if err != nil {
			return nil, err
		}
	}
}

// startTrainersOf starts a trainer of the job cfg on each of comms, with
// its outputs in a new temporary directory.
func startTrainersOf(t *testing.T, comms []*elastic.Comm, cfg *config.Config) ([]*trainer, error) {
	t.Helper()
	cp := *cfg
	cfg = &cp
	cfg.Output.Dir = t.TempDir()
	trs := make([]*trainer, len(comms))
	errs := parallel(comms, func(c *elastic.Comm) error {
		tr := newTestTrainer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		tr.prom = jobmetrics.New() // metrics on: the step loop must not allocate with them either
		trs[c.Rank()] = tr
		return tr.Resize(context.Background(), c)
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
			if got, want := tr.prom.Steps(), float64(from-warm); got != want {
				t.Errorf("%s: rank %d: dmlrun_steps_total %v after %v steps", model, tr.comm().Rank(), got, want)
			}
		}
	}
}
