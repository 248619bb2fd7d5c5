package plots

import (
	"cmp"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MetricsRow is one evaluation of a run: one line of metrics.csv. A value
// that was not measured (an empty cell, or NaN) is NaN; an unknown world
// size is 0.
type MetricsRow struct {
	Step         int
	TrainLoss    float64
	TestLoss     float64
	TestMSE      float64
	TestR2       float64
	TestAccuracy float64
	WorldSize    int
	Candidate    int // a search's candidate (the candidate column); -1 without
}

// metricsColumns are the columns ReadMetrics reads, by header name; the
// others (epoch, elapsed_s, any added later) are ignored.
var metricsColumns = []string{"step", "train_loss", "test_loss", "test_mse", "test_r2", "test_accuracy", "world_size", "candidate"}

// ReadMetrics reads a metrics.csv as dmlrun writes it: a header naming the
// columns, then one line per evaluation:
//
//	step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s
//
// Columns are matched by name, so their order does not matter; only step is
// required. Empty cells and NaN read as NaN. Lines may repeat or go back in
// step (a new rank 0 appends after a failure, a resumed run goes on from an
// older checkpoint): the rows come back sorted by step, and for a step that
// appears more than once (for one candidate of a search: a search writes a
// line per candidate and step) the line written last wins. A malformed line (a
// field count that differs from the header's, a step or a value that is
// not a number) is an error naming its line and column.
func ReadMetrics(r io.Reader) ([]MetricsRow, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("metrics: empty file, no header")
	}
	if err != nil {
		return nil, fmt.Errorf("metrics: header: %w", err)
	}
	col := map[string]int{}
	for i, name := range header {
		col[strings.TrimSpace(strings.TrimPrefix(name, "\ufeff"))] = i
	}
	idx := make([]int, len(metricsColumns))
	for i, name := range metricsColumns {
		j, ok := col[name]
		if !ok {
			j = -1
		}
		idx[i] = j
	}
	if idx[0] < 0 {
		return nil, fmt.Errorf("metrics: no step column in the header %q", strings.Join(header, ","))
	}
	var rows []MetricsRow
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		line, _ := cr.FieldPos(0)
		row, err := parseMetricsRow(rec, idx)
		if err != nil {
			return nil, fmt.Errorf("metrics: line %d: %w", line, err)
		}
		rows = append(rows, row)
	}
	// Stable, so that among equal steps the order of writing is kept; then
	// keep the last line of each (candidate, step).
	slices.SortStableFunc(rows, func(a, b MetricsRow) int { return cmp.Compare(a.Step, b.Step) })
	type key struct{ cand, step int }
	last := map[key]int{}
	for i, r := range rows {
		last[key{r.Candidate, r.Step}] = i
	}
	out := rows[:0]
	for i, r := range rows {
		if last[key{r.Candidate, r.Step}] == i {
			out = append(out, r)
		}
	}
	return out, nil
}

// parseMetricsRow reads one record; idx gives the record index of each of
// metricsColumns, -1 for a column the file does not have.
func parseMetricsRow(rec []string, idx []int) (MetricsRow, error) {
	field := func(k int) string {
		if idx[k] < 0 {
			return ""
		}
		return strings.TrimSpace(rec[idx[k]])
	}
	var row MetricsRow
	step, err := strconv.Atoi(field(0))
	if err != nil || step < 0 {
		return row, fmt.Errorf("column step: %q is not a step number", field(0))
	}
	row.Step = step
	for k, dst := range []*float64{&row.TrainLoss, &row.TestLoss, &row.TestMSE, &row.TestR2, &row.TestAccuracy} {
		name := metricsColumns[k+1]
		s := field(k + 1)
		if s == "" {
			*dst = math.NaN()
			continue
		}
		if *dst, err = strconv.ParseFloat(s, 64); err != nil {
			return row, fmt.Errorf("column %s: %q is not a number", name, s)
		}
	}
	if s := field(6); s != "" {
		if row.WorldSize, err = strconv.Atoi(s); err != nil || row.WorldSize < 0 {
			return row, fmt.Errorf("column world_size: %q is not a number of nodes", s)
		}
	}
	row.Candidate = -1
	if s := field(7); s != "" {
		if row.Candidate, err = strconv.Atoi(s); err != nil || row.Candidate < 0 {
			return row, fmt.Errorf("column candidate: %q is not a candidate number", s)
		}
	}
	return row, nil
}
