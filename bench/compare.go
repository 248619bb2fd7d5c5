package bench

// Compare's run loop: every process count, every round, every available
// system in turn, each run bounded by a timeout; then the table.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dmlrun/dmlrun/launch"
)

// system is one thing that Compare measures.
type system struct {
	status *SystemStatus
	run    func(ctx context.Context, n int) ([]Row, error)
}

// Compare measures dmlrun's allreduce (float32, sum) against Open MPI over
// TCP and torch.distributed's gloo backend, where installed, at the same
// sizes and process counts. For each n it runs Rounds rounds, each of them
// dmlrun's sweep (dmlrunArgv starts one worker, as for RunAllReduce), then
// MPI's, then gloo's, so that all three see the same machine load; it keeps
// each system's best per size, and prints one table to out. Progress, peer
// failures and worker logs go to log.
//
// A peer that is not installed is reported and skipped. A run that fails
// (or times out and is killed) is reported with the end of its stderr; the
// sizes it completed still count. Compare fails if dmlrun does (including
// wrong results) or if ctx ends, after printing what was measured; once the
// options are valid it returns the Comparison, error or not.
func Compare(ctx context.Context, o CompareOptions, dmlrunArgv []string, out, log io.Writer) (*Comparison, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "dmlrun-compare-")
		if err != nil {
			return nil, fmt.Errorf("making a directory to build the MPI benchmark in: %w", err)
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	c := &Comparison{Options: o}
	systems := []system{dmlrunSystem(&o, dmlrunArgv, log), mpiSystem(ctx, &o), glooSystem(ctx, &o)}
	for _, s := range systems {
		c.Systems = append(c.Systems, *s.status)
		if !s.status.Available {
			fmt.Fprintf(log, "bench compare: %s: %s; skipped\n", s.status.Name, s.status.Note)
		}
	}

	var dmlrunErrs []error
	var stopped error
	total, done := 0, 0
	for _, s := range c.Systems {
		if s.Available {
			total += len(o.NPs) * o.Rounds
		}
	}
	progress := func(what string) {
		if o.Display != nil {
			o.Display.Update(launch.Progress{Phase: "compare " + what, Unit: "run", Step: done, Steps: total})
		}
	}
runs:
	for _, n := range o.NPs {
		ar := o.allReduce(n)
		c.Blocks = append(c.Blocks, newBlock(n, ar.sizes()))
		b := &c.Blocks[len(c.Blocks)-1]
		timedOut := map[string]bool{}
		for round := 1; round <= o.Rounds; round++ {
			for i, s := range systems {
				name := s.status.Name
				if !c.Systems[i].Available || timedOut[name] {
					continue
				}
				progress(fmt.Sprintf("%s n=%d round %d/%d", name, n, round, o.Rounds))
				rctx, cancel := context.WithTimeout(ctx, o.timeout())
				start := time.Now()
				rows, err := s.run(rctx, n)
				timedOut[name] = rctx.Err() == context.DeadlineExceeded
				cancel()
				rec := RunRecord{System: name, Round: round, Seconds: time.Since(start).Seconds(), Sizes: len(rows)}
				b.add(name, rows)
				if ctx.Err() != nil {
					b.Runs = append(b.Runs, rec)
					stopped = fmt.Errorf("bench compare interrupted during %s, n=%d, round %d: %w", name, n, round, ctx.Err())
					break runs
				}
				if timedOut[name] {
					err = fmt.Errorf("timed out after %v and was killed (%v); skipping its remaining rounds at n=%d", o.timeout(), err, n)
				}
				what := fmt.Sprintf("n=%d round %d/%d: %s", n, round, o.Rounds, name)
				if err != nil {
					rec.Error = err.Error()
					fmt.Fprintf(log, "bench compare: %s failed after %.1fs: %v\n", what, rec.Seconds, err)
					if name == SystemDMLRun {
						dmlrunErrs = append(dmlrunErrs, fmt.Errorf("%s: %w", what, err))
					}
				} else {
					fmt.Fprintf(log, "bench compare: %s: %d sizes in %.1fs\n", what, len(rows), rec.Seconds)
				}
				b.Runs = append(b.Runs, rec)
				done++
				progress(fmt.Sprintf("%s n=%d round %d/%d", name, n, round, o.Rounds))
			}
		}
	}
	for i := range c.Blocks {
		c.Blocks[i].finish()
	}
	c.WriteTable(out)
	if stopped != nil {
		return c, stopped
	}
	if len(dmlrunErrs) > 0 {
		return c, fmt.Errorf("dmlrun failed in %d run(s): %w", len(dmlrunErrs), errors.Join(dmlrunErrs...))
	}
	return c, nil
}
