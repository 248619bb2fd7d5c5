package data

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// Source is a data set whose virtual shards can be read one at a time: a
// node reads only the shards it owns, and after the ring changes only those
// newly assigned to it. Opening a source reads what it needs to know where
// every shard starts (for CSV and LIBSVM one byte-level pass per file, kept
// for the run); ReadShards then parses just the byte ranges (or Parquet row
// groups) of the shards asked for.
//
//	src, err := data.Open(ctx, data.Spec{Paths: []string{"data/part-*.csv"}, Label: "y"})
//	part := src.Sharding().Part(rank, nodes)
//	tables, err := src.ReadShards(ctx, part.Shards()) // one table per shard
type Source interface {
	// Name names the data set in messages: its path, or its first path and
	// how many files follow.
	Name() string
	// Rows returns N, the number of data rows.
	Rows() int
	// FeatureNames returns the names of the feature columns.
	FeatureNames() []string
	// Sharding returns the virtual shards of the rows, fixed for the run.
	Sharding() Sharding
	// ReadShards parses the given virtual shards (ascending) and returns one
	// table each, in the same order. It uses up to GOMAXPROCS goroutines.
	ReadShards(ctx context.Context, shards []int) ([]*Table, error)
}

// Spec says which data set to open and how.
type Spec struct {
	// Paths are files, directories (their part files, in lexical order) or
	// glob patterns; together, in order, they form one data set.
	Paths []string
	// Format is csv, libsvm or parquet; "" guesses from the file names
	// (.parquet, .svm or .libsvm, else csv; a .gz suffix is looked through).
	Format string
	// Label names the label column (CSV, Parquet); "" means the last column.
	Label string
	// Unlabeled reads every column as a feature (for prediction); Y is NaN.
	Unlabeled bool
	// Float32 stores the features as float32 (half the memory).
	Float32 bool
	// Shards is V, the number of virtual shards; 0 means DefaultShards.
	Shards int

	// Rank and Nodes: the nodes that open the data set together (all with
	// the same Spec but Rank) each index 1/Nodes of its bytes, and Exchange
	// sums a vector over all of them (an allreduce) to share what they
	// found. Nodes <= 1 (or no Exchange): this node indexes everything.
	Rank, Nodes int
	Exchange    func(ctx context.Context, v []float64) error
}

// Open opens the data set of spec and indexes it.
func Open(ctx context.Context, spec Spec) (Source, error) {
	files, err := ExpandPaths(spec.Paths)
	if err != nil {
		return nil, err
	}
	format := spec.Format
	if format == "" {
		format = GuessFormat(files)
	}
	switch format {
	case "csv":
		return openCSV(ctx, files, spec)
	case "libsvm":
		return openLIBSVM(ctx, files, spec)
	case "parquet":
		return openParquet(ctx, files, spec)
	}
	return nil, fmt.Errorf("data: format %q is not csv, libsvm or parquet", format)
}

// GuessFormat returns the format the file names suggest: parquet if every
// file ends in .parquet, libsvm if the first ends in .svm or .libsvm (also
// before .gz), else csv.
func GuessFormat(files []string) string {
	if len(files) == 0 {
		return "csv"
	}
	pq := true
	for _, f := range files {
		pq = pq && strings.HasSuffix(f, ".parquet")
	}
	name := strings.TrimSuffix(files[0], ".gz")
	switch {
	case pq:
		return "parquet"
	case strings.HasSuffix(name, ".svm") || strings.HasSuffix(name, ".libsvm"):
		return "libsvm"
	}
	return "csv"
}

// sourceName names a list of files in messages.
func sourceName(files []string) string {
	if len(files) == 1 {
		return files[0]
	}
	return fmt.Sprintf("%s (and %d more files)", files[0], len(files)-1)
}

// rowsParsed counts the rows every reader of this process has parsed: a test
// hook to check that recovery reads only the shards that moved.
var rowsParsed atomic.Int64

// RowsParsed returns how many rows this process has parsed (or generated)
// since it started.
func RowsParsed() int64 { return rowsParsed.Load() }

// readParallel reads shards with read, GOMAXPROCS at a time, and returns the
// tables in the order of shards.
func readParallel(ctx context.Context, s Sharding, shards []int, read func(v int) (*Table, error)) ([]*Table, error) {
	if err := checkShards(s, shards); err != nil {
		return nil, err
	}
	out := make([]*Table, len(shards))
	err := runParallel(ctx, len(shards), func(i int) error {
		t, err := read(shards[i])
		if err == nil {
			rowsParsed.Add(int64(t.Len()))
			out[i] = t
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := finishTables(out); err != nil {
		return nil, err
	}
	return out, nil
}

// checkShards checks that shards are ascending shards of s.
func checkShards(s Sharding, shards []int) error {
	for i, v := range shards {
		if v < 0 || v >= s.Shards() || (i > 0 && v <= shards[i-1]) {
			return fmt.Errorf("data: shards %v: want ascending shards of 0..%d", shards, s.Shards()-1)
		}
	}
	return nil
}

// runParallel calls fn(0..n-1), GOMAXPROCS at a time. The first error wins
// and stops the calls not yet started.
func runParallel(ctx context.Context, n int, fn func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
