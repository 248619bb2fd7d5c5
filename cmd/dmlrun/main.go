// Command dmlrun is an MPI-style allreduce runtime over TCP and a
// data-parallel trainer built on it. This file only parses flags and calls
// the packages; see README.md for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/dmlrun/dmlrun/launch"
)

const usage = `usage:
  dmlrun -np N [train.yaml]                train on N local processes (no train.yaml: the built-in default job)
  dmlrun node [-join ADDR,...] train.yaml  run one worker (started by hand or by a scheduler)
  dmlrun predict -model M.json data...     predictions of a trained model, one line per row
  dmlrun predict -np N -model M.json [-o FILE|DIR/] data...  the same, rows split over N processes (or -hosts FILE)
  dmlrun bench allreduce [-np N] [flags]   allreduce bandwidth sweep (nccl-tests layout)
  dmlrun bench train -np N [train.yaml]    training throughput and step-time split
  dmlrun bench data -np N train.yaml      data loading: time, MB/s, peak memory, takeover; pandas beside
  dmlrun bench compare [-np 2,4]           allreduce against Open MPI and gloo, where installed
  dmlrun help                              this text

Run 'dmlrun bench allreduce -h' for the flags of a command.
`

// errUsage marks errors in the command line (exit status 2).
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdin, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "dmlrun: %v\n", err)
		return 2
	}
	var je *launch.JobError
	if errors.As(err, &je) { // the root-cause node's status, as torchrun does
		fmt.Fprintf(stderr, "dmlrun: %v\n", err)
		return je.Code
	}
	fmt.Fprintf(stderr, "dmlrun: %v\n", err)
	return 1
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command given", errUsage)
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "bench":
		return benchCmd(ctx, args[1:], stdin, stdout, stderr)
	case "node":
		return nodeCmd(ctx, args[1:], stdin, stdout, stderr)
	case "predict":
		return predictCmd(ctx, args[1:], stdin, stdout, stderr)
	}
	if strings.HasPrefix(args[0], "-") {
		return launchCmd(ctx, args, stdout, stderr)
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

// usageErr wraps a flag-parsing error so that run exits with status 2.
func usageErr(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %v", errUsage, err)
}
