package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/train"
)

// predictCmd runs `dmlrun predict -model model.json data.csv [-o out.csv]`.
func predictCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dmlrun predict", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "model.json written by a training run (required)")
	outFile := fs.String("o", "", "write the predictions to this file instead of standard output")
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	if *model == "" {
		return usageErr(errors.New("-model is required, e.g. -model runs/demo/model.json"))
	}
	if fs.NArg() != 1 {
		return usageErr(fmt.Errorf("one data file expected, got %d", fs.NArg()))
	}
	f, m, err := train.ReadModelFile(*model)
	if err != nil {
		return err
	}
	w := stdout
	if *outFile != "" {
		file, err := os.Create(*outFile)
		if err != nil {
			return err
		}
		defer file.Close()
		w = file
	}
	src, err := data.Open(ctx, data.Spec{Paths: []string{fs.Arg(0)}, Unlabeled: true})
	if err != nil {
		return err
	}
	if err := f.Predict(ctx, m, src, w); err != nil {
		return err
	}
	if c, ok := w.(*os.File); ok && c != os.Stdout {
		return c.Close()
	}
	return nil
}
