package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/dmlrun/dmlrun/bench"
	"github.com/dmlrun/dmlrun/launch"
)

func benchCmd(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: dmlrun bench needs a benchmark: allreduce, train, data or compare", errUsage)
	}
	switch args[0] {
	case "allreduce":
		o, files, err := parseBenchAllReduce(args[1:], stderr)
		if err != nil {
			return usageErr(err)
		}
		self, err := os.Executable()
		if err != nil {
			return err
		}
		o.Remote.Self = self
		o.Display = launch.NewDisplay(stderr, files.progress)
		out := stdout
		if o.Display.Mode() == launch.ProgressBar && launch.IsTerminal(stdout) {
			out = o.Display // the rows go above the bar, not through it
		}
		res, err := bench.RunAllReduce(ctx, o, []string{self, "bench", "worker"}, out, stderr)
		o.Display.Close()
		if res == nil || len(res.Rows) == 0 {
			return err
		}
		if files.json != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			if werr := os.WriteFile(files.json, append(b, '\n'), 0o644); werr != nil && err == nil {
				err = werr
			}
		}
		return benchPlot(stdout, files.plot, res.PlotPNG, err)
	case "train":
		return benchTrainCmd(ctx, args[1:], stdout, stderr)
	case "data":
		return benchDataCmd(ctx, args[1:], stdout, stderr)
	case "compare":
		return compareCmd(ctx, args[1:], stdout, stderr)
	case "worker": // internal: one rank of `bench allreduce`, started by the launcher
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return bench.AllReduceWorker(ctx, stdin, stdout, log)
	}
	return fmt.Errorf("%w: unknown benchmark %q (want allreduce, train, data or compare)", errUsage, args[0])
}

// benchFiles are what a benchmark shows and writes besides its table.
type benchFiles struct {
	json     string              // -json: the rows as JSON
	plot     string              // -plot: busbw against size, PNG
	progress launch.ProgressMode // -progress
}

// parseBenchAllReduce parses the flags of `dmlrun bench allreduce`.
func parseBenchAllReduce(args []string, stderr io.Writer) (bench.AllReduceOptions, benchFiles, error) {
	o := bench.DefaultAllReduceOptions()
	fs := flag.NewFlagSet("dmlrun bench allreduce", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.NP, "np", o.NP, "number of local processes (ranks)")
	fs.Var(&o.MinBytes, "min-bytes", "smallest size (K, M, G suffixes)")
	fs.Var(&o.MaxBytes, "max-bytes", "largest size (K, M, G suffixes)")
	fs.IntVar(&o.Factor, "factor", o.Factor, "size multiplier between rows")
	fs.StringVar(&o.DType, "dtype", o.DType, "element type: float32 or float64")
	fs.StringVar(&o.Op, "op", o.Op, "reduction: sum, min or max")
	fs.IntVar(&o.Iters, "iters", o.Iters, "timed iterations per size")
	fs.IntVar(&o.Warmup, "warmup", o.Warmup, "untimed iterations per size")
	fs.StringVar(&o.Algorithm, "algo", o.Algorithm, "allreduce algorithm: auto, ring or rd (recursive doubling)")
	fs.Var(&o.ChunkBytes, "chunk", "pipelining piece size (0 = 1M)")
	fs.Var(&o.SmallBytes, "small", "largest size that auto sends by recursive doubling (0 = 64K)")
	fs.IntVar(&o.Spin, "spin", o.Spin, "non-blocking attempts before a rank sleeps (0 = default 100, -1 = never spin)")
	fs.StringVar(&o.Protect, "protect", o.Protect, "frame protection: auto (MAC except on loopback), none, mac or encrypt")
	fs.StringVar(&o.Bind, "bind", o.Bind, "data-plane address of the local ranks")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "deadline of each size's timed loop")
	var files benchFiles
	fs.StringVar(&files.json, "json", "", "also write the rows as JSON to this file")
	fs.StringVar(&files.plot, "plot", "", "also draw busbw against message size to this PNG file")
	progress := fs.String("progress", "auto", "progress of the sweep: auto (a bar on a terminal, plain lines otherwise), bar, plain or none")
	hostsFile := fs.String("hosts", "", "run the ranks on the hosts of this hosts file instead of -np local processes")
	hostList := fs.String("H", "", "hosts inline: h1:2,h2:2")
	ssh := fs.String("ssh", "ssh", "ssh client command for remote hosts")
	fs.StringVar(&o.Remote.Bin, "remote-bin", "", "dmlrun binary on the remote hosts (default: this binary's path)")
	if err := fs.Parse(args); err != nil {
		return o, files, err
	}
	o.Remote.SSH = strings.Fields(*ssh)
	var err error
	if files.progress, err = launch.ParseProgressMode(*progress); err != nil {
		return o, files, err
	}
	if o.Hosts, err = parseHosts(*hostsFile, *hostList); err != nil {
		return o, files, err
	}
	if fs.NArg() > 0 {
		return o, files, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return o, files, errors.Join(o.Validate(), checkPlotFlag(files.plot))
}
