package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// pandasScript reads CSV files with pandas.read_csv (the C engine) into one
// DataFrame and prints the seconds it took, then the rows.
const pandasScript = `
import sys, time
import pandas as pd
t = time.perf_counter()
frames = [pd.read_csv(f, engine="c") for f in sys.argv[1:]]
df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
print(time.perf_counter() - t, len(df))
`

// ErrNoPandas says that python3 with pandas is not installed here.
var ErrNoPandas = errors.New("python3 with pandas is not installed (apt-get install python3-pandas)")

// PandasReadCSV times pandas.read_csv of files (in one process, as a person
// with one machine would load them), and returns the seconds and the rows.
func PandasReadCSV(ctx context.Context, files []string) (float64, int, error) {
	if err := exec.CommandContext(ctx, python, "-c", "import pandas").Run(); err != nil {
		return 0, 0, ErrNoPandas
	}
	out, err := exec.CommandContext(ctx, python, append([]string{"-c", pandasScript}, files...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, 0, fmt.Errorf("pandas.read_csv: %v: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, 0, fmt.Errorf("pandas.read_csv: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("pandas.read_csv printed %q", out)
	}
	sec, err1 := strconv.ParseFloat(f[0], 64)
	rows, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("pandas.read_csv printed %q", out)
	}
	return sec, rows, nil
}
