package node

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dmlrun/dmlrun/train"
)

// metricsColumns are the first columns of metrics.csv, always in this order
// (plots.ReadMetrics and other tools read them by name):
//
//	step,epoch,train_loss,test_loss,test_mse,test_r2,test_accuracy,world_size,elapsed_s,macro_f1,auc
//
// test_mse and test_r2 are filled for regression; test_accuracy, macro_f1
// and auc (two classes only) for classification; the others are left
// empty. A classification run with at most train.MaxConfusionClasses
// classes adds precision_c,recall_c,f1_c for each class c = 0..K-1.
var metricsColumns = []string{"step", "epoch", "train_loss", "test_loss", "test_mse", "test_r2", "test_accuracy", "world_size", "elapsed_s", "macro_f1", "auc"}

// metricsHeader returns the columns of a run with classes classes (0 for
// regression); a search adds a candidate column (search.csv's number).
func metricsHeader(classes int, search bool) []string {
	cols := append([]string(nil), metricsColumns...)
	if search {
		cols = append(cols, "candidate")
	}
	if classes <= train.MaxConfusionClasses {
		for c := range classes {
			cols = append(cols, fmt.Sprintf("precision_%d", c), fmt.Sprintf("recall_%d", c), fmt.Sprintf("f1_%d", c))
		}
	}
	return cols
}

// metricsWriter appends one line per evaluation to metrics.csv, in the
// columns of its header (see metricsColumns).
type metricsWriter struct {
	f    *os.File
	w    *bufio.Writer
	cols []string // the header's columns, in order
}

// newMetricsWriter opens dir/metrics.csv: a new file, or, with appendTo, the
// end of the existing one (a resumed run, or a new rank 0 after a failure),
// whose header's columns it writes from then on (by name: a column it does
// not know stays empty). classes is the model's number of classes, 0 for
// regression.
func newMetricsWriter(dir string, appendTo bool, classes int, search bool) (*metricsWriter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	path := filepath.Join(dir, "metrics.csv")
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m := &metricsWriter{f: f, w: bufio.NewWriter(f), cols: metricsHeader(classes, search)}
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		fmt.Fprintln(m.w, strings.Join(m.cols, ","))
	} else if appendTo {
		if m.cols, err = readHeader(path); err != nil {
			f.Close()
			return nil, err
		}
	}
	return m, nil
}

// readHeader returns the columns of the first line of a metrics.csv.
func readHeader(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("metrics: %s: %w", path, err)
	}
	return strings.Split(strings.TrimRight(line, "\r\n"), ","), nil
}

func num(x float64, ok bool) string {
	if !ok {
		return ""
	}
	return strconv.FormatFloat(x, 'g', -1, 64)
}

// write appends one evaluation; cand is a search's candidate, -1 without.
func (m *metricsWriter) write(step, epoch int, trainLoss float64, e train.Metrics, reg bool, world int, elapsed time.Duration, cand int) error {
	v := map[string]string{"candidate": num(float64(cand), cand >= 0),
		"step": strconv.Itoa(step), "epoch": strconv.Itoa(epoch), "train_loss": num(trainLoss, true), "test_loss": num(e.Loss, true),
		"test_mse": num(e.MSE, reg), "test_r2": num(e.R2, reg), "test_accuracy": num(e.Accuracy, !reg),
		"world_size": strconv.Itoa(world), "elapsed_s": fmt.Sprintf("%.3f", elapsed.Seconds()),
	}
	if r := e.Class; r != nil {
		v["macro_f1"] = num(r.MacroF1, true)
		if r.AUC != nil {
			v["auc"] = num(*r.AUC, true)
		}
		for c := range r.Precision {
			k := strconv.Itoa(c)
			v["precision_"+k], v["recall_"+k], v["f1_"+k] = num(r.Precision[c], true), num(r.Recall[c], true), num(r.F1[c], true)
		}
	}
	for i, col := range m.cols {
		if i > 0 {
			m.w.WriteByte(',')
		}
		m.w.WriteString(v[col])
	}
	err := m.w.WriteByte('\n')
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
