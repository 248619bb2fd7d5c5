package node

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/dmlrun/dmlrun/plots"
)

// saveTrainingPlot reads dir/metrics.csv back (closed by now: every rank 0
// the run had appended to it) and draws dir/training.png from it,
// atomically: the loss and the test metric against step, with the world
// size changes marked. It returns the path written. A failure is an error
// of the run, naming the file: the plot is one of its outputs. A search
// draws candidate cand's lines (the best's); cand is -1 without a search.
func saveTrainingPlot(dir, name string, cand int) (string, error) {
	src := filepath.Join(dir, "metrics.csv")
	path := filepath.Join(dir, "training.png")
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("drawing %s: %w", path, err)
	}
	rows, err := plots.ReadMetrics(f)
	f.Close()
	if err != nil {
		return "", fmt.Errorf("drawing %s from %s: %w", path, src, err)
	}
	if cand >= 0 {
		rows = slices.DeleteFunc(rows, func(r plots.MetricsRow) bool { return r.Candidate != cand })
		name = fmt.Sprintf("%s (search: candidate %d)", name, cand)
	}
	png, err := plots.Training{Title: name, Rows: rows}.PNG()
	if err != nil {
		return "", fmt.Errorf("drawing %s from %s: %w", path, src, err)
	}
	if err := writeFileAtomic(path, png); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}
