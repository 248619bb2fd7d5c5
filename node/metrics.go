package node

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dmlrun/dmlrun/train"
)

// metricsWriter appends one line per evaluation to metrics.csv:
//
//	step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s
//
// (test_mse and test_r2 for regression, test_accuracy for classification;
// the others are left empty).
type metricsWriter struct {
	f *os.File
	w *bufio.Writer
}

// newMetricsWriter opens dir/metrics.csv: a new file, or, with appendTo, the
// end of the existing one (a resumed run, or a new rank 0 after a failure).
func newMetricsWriter(dir string, appendTo bool) (*metricsWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(filepath.Join(dir, "metrics.csv"), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	w := bufio.NewWriter(f)
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		fmt.Fprintln(w, "step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s")
	}
	return &metricsWriter{f: f, w: w}, nil
}

func num(x float64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

func (m *metricsWriter) write(step, epoch int, trainLoss float64, e train.Metrics, reg bool, world int, elapsed time.Duration) error {
	_, err := fmt.Fprintf(m.w, "%d,%d,%s,%s,%s,%s,%s,%d,%.3f\n", step, epoch, num(trainLoss, true), num(e.Loss, true),
		num(e.MSE, reg), num(e.R2, reg), num(e.Accuracy, !reg), world, elapsed.Seconds())
	if err == nil {
		err = m.w.Flush() // a crash keeps every line written so far
	}
	return err
}

func (m *metricsWriter) Close() error {
	if err := m.w.Flush(); err != nil {
		m.f.Close()
		return err
	}
	if err := m.f.Sync(); err != nil {
		m.f.Close()
		return err
	}
	return m.f.Close()
}
