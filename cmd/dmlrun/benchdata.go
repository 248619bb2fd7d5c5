package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/dmlrun/dmlrun/bench"
	"github.com/dmlrun/dmlrun/data"
	"github.com/dmlrun/dmlrun/node"
)

// benchDataCmd runs `dmlrun bench data -np N | -hosts FILE train.yaml`:
// every node opens the data set with the others and reads its shards, then
// reads what it would gain if the last rank were lost; the table shows each
// node's load time, MB/s, rows/s, peak memory against the bound of issue 8
// (1.25 × its rows' bytes + 64 MiB), and the takeover. Where python3-pandas
// is installed and the data are CSV, pandas.read_csv of the same files
// runs in the same invocation, for the ratio.
func benchDataCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseLaunch(args, stderr)
	if err != nil {
		return usageErr(err)
	}
	res, cfg, err := runJob(ctx, f, []string{"-data-bench"}, stdout, stderr)
	if err != nil {
		return err
	}
	var rows []node.DataBench
	for i, r := range res.Reports {
		var b node.DataBench
		raw, _ := json.Marshal(r.Extra)
		if err := json.Unmarshal(raw, &b); err != nil || b.Size == 0 {
			return fmt.Errorf("node %d sent no data statistics", i)
		}
		rows = append(rows, b)
	}
	slices.SortFunc(rows, func(a, b node.DataBench) int { return a.Rank - b.Rank })
	fmt.Fprintf(stdout, "# dmlrun bench data: %d nodes, %s, dtype %s\n", len(rows), cfg.Data.Train, cfg.Data.DType)
	fmt.Fprintf(stdout, "%4s %10s %9s %9s %11s %9s %9s %4s %12s %10s\n",
		"rank", "rows", "load s", "MB/s", "rows/s", "peak MiB", "bound MiB", "ok", "takeover", "takeover s")
	slowest, over := 0.0, 0
	for _, b := range rows {
		bound := 1.25*float64(b.DataBytes) + 64<<20
		ok := "yes"
		if float64(b.PeakRSS) > bound {
			ok, over = "NO", over+1
		}
		mbs := "-"
		if b.FileBytes > 0 {
			mbs = fmt.Sprintf("%.0f", float64(b.FileBytes)/1e6/b.LoadSec)
		}
		fmt.Fprintf(stdout, "%4d %10d %9.3f %9s %11.0f %9.1f %9.1f %4s %12d %10.3f\n", b.Rank, b.Rows, b.LoadSec, mbs,
			float64(b.Rows)/b.LoadSec, float64(b.PeakRSS)/(1<<20), bound/(1<<20), ok, b.TakeoverRows, b.TakeoverSec)
		slowest = max(slowest, b.LoadSec)
	}
	fmt.Fprintf(stdout, "slowest node loaded its rows in %.3f s\n", slowest)
	if cfg.Data.Format == "synthetic" || (cfg.Data.Format != "" && cfg.Data.Format != "csv") {
		return nil
	}
	files, err := data.ExpandPaths(cfg.Data.Train)
	if err != nil || data.GuessFormat(files) != "csv" {
		return err
	}
	sec, n, err := bench.PandasReadCSV(ctx, files)
	switch {
	case errors.Is(err, bench.ErrNoPandas):
		fmt.Fprintf(stdout, "pandas: %v\n", err)
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "pandas.read_csv (one process): %.3f s for %d rows; dmlrun's slowest node is %.1fx faster\n", sec, n, sec/slowest)
	if over > 0 {
		return fmt.Errorf("%d nodes went over the memory bound", over)
	}
	return nil
}
