package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dmlrun/dmlrun/bench"
)

// compareCmd runs `dmlrun bench compare`: dmlrun's allreduce sweep
// interleaved with Open MPI's and gloo's, where installed, in one table.
func compareCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, files, err := parseBenchCompare(args, stderr)
	if err != nil {
		return usageErr(err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the dmlrun binary to start workers from: %w", err)
	}
	res, err := bench.Compare(ctx, o, []string{self, "bench", "worker"}, stdout, stderr)
	if res == nil {
		return err
	}
	if files.json != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if werr := os.WriteFile(files.json, append(b, '\n'), 0o644); werr != nil && err == nil {
			err = fmt.Errorf("writing the comparison: %w", werr)
		}
	}
	return benchPlot(stdout, files.plot, res.PlotPNG, err)
}

// parseBenchCompare parses the flags of `dmlrun bench compare`.
func parseBenchCompare(args []string, stderr io.Writer) (bench.CompareOptions, benchFiles, error) {
	o := bench.DefaultCompareOptions()
	o.PeersDir = findPeersDir()
	fs := flag.NewFlagSet("dmlrun bench compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&o.NPs, "np", "process counts to compare at, comma-separated")
	fs.Var(&o.MinBytes, "min-bytes", "smallest size (K, M, G suffixes)")
	fs.Var(&o.MaxBytes, "max-bytes", "largest size (K, M, G suffixes)")
	fs.IntVar(&o.Factor, "factor", o.Factor, "size multiplier between rows")
	fs.IntVar(&o.Iters, "iters", o.Iters, "timed iterations per size")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed iterations per size")
	fs.IntVar(&o.Rounds, "rounds", o.Rounds, "interleaved rounds per process count; each system's best round counts")
	fs.StringVar(&o.PeersDir, "peers", o.PeersDir, "directory of the peer programs (mpi_allreduce.c, gloo_allreduce.py)")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "deadline of each run of each system; a run still going is killed")
	var files benchFiles
	fs.StringVar(&files.json, "json", "", "also write every number as JSON to this file")
	fs.StringVar(&files.plot, "plot", "", "also draw each system's busbw against message size to this PNG file")
	if err := fs.Parse(args); err != nil {
		return o, files, err
	}
	if fs.NArg() > 0 {
		return o, files, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, files, errors.Join(o.Validate(), checkPlotFlag(files.plot))
}

// findPeersDir is bench/peers in the current directory or the nearest parent
// that has one, or plain bench/peers.
func findPeersDir() string {
	rel := filepath.Join("bench", "peers")
	dir, err := os.Getwd()
	if err != nil {
		return rel
	}
	for {
		p := filepath.Join(dir, rel)
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return rel
		}
		dir = parent
	}
}
