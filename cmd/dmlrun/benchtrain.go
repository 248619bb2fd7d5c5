package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dmlrun/dmlrun/node"
)

// benchTrainCmd runs `dmlrun bench train -np N [train.yaml]`: the training
// job, then samples per second and how step time splits between local
// compute and the allreduce.
func benchTrainCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseLaunch(args, stderr)
	if err != nil {
		return usageErr(err)
	}
	res, cfg, err := runJob(ctx, f, []string{"-stats"}, stdout, stderr)
	if err != nil {
		return err
	}
	var worst node.Summary
	for i, r := range res.Reports {
		var s node.Summary
		b, _ := json.Marshal(r.Extra)
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("node %d sent no statistics", i)
		}
		if i == 0 || s.SamplesPerSec < worst.SamplesPerSec {
			worst = s
		}
	}
	fmt.Fprintf(stdout, "# dmlrun bench train: %d nodes, model %s, global batch %d, %d steps (slowest node)\n",
		f.np, cfg.Model.Kind, cfg.Training.BatchSize, worst.Steps)
	fmt.Fprintf(stdout, "samples/s          %12.0f\n", worst.SamplesPerSec)
	fmt.Fprintf(stdout, "step      median   %9.1f us\n", worst.StepMedianUS)
	fmt.Fprintf(stdout, "compute   median   %9.1f us   p99 %9.1f us\n", worst.ComputeMedianUS, worst.ComputeP99US)
	fmt.Fprintf(stdout, "allreduce median   %9.1f us   p99 %9.1f us\n", worst.AllReduceMedianUS, worst.AllReduceP99US)
	return nil
}
