package bench

// The options of `dmlrun bench compare`: CompareOptions with its defaults
// and validation, the dmlrun sweep they imply for n ranks, and the -np list
// flag.

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dmlrun/dmlrun/launch"
)

// CompareOptions configure `dmlrun bench compare`.
type CompareOptions struct {
	NPs      NPList   `json:"np"`
	MinBytes ByteSize `json:"min_bytes"`
	MaxBytes ByteSize `json:"max_bytes"`
	Factor   int      `json:"factor"`
	Iters    int      `json:"iters"`
	Warmup   int      `json:"warmup"`
	Rounds   int      `json:"rounds"`
	// PeersDir holds the peer programs (mpi_allreduce.c, gloo_allreduce.py).
	PeersDir string `json:"peers_dir"`
	// WorkDir is where the MPI program is built; "" means a temporary
	// directory, removed when Compare returns.
	WorkDir string `json:"work_dir,omitempty"`
	// Timeout bounds each run (one system, one n, one round); a run still
	// going is killed. 0 means 10 minutes.
	Timeout time.Duration `json:"timeout"`
	// Display, when set, shows which run (system, n, round) of how many is
	// going, and the launcher's lines above it.
	Display *launch.Display `json:"-"`
}

// DefaultCompareOptions are the defaults of `dmlrun bench compare`.
func DefaultCompareOptions() CompareOptions {
	return CompareOptions{NPs: NPList{2, 4}, MinBytes: 8, MaxBytes: 64 << 20, Factor: 4,
		Iters: 20, Warmup: 5, Rounds: 3, PeersDir: filepath.Join("bench", "peers"), Timeout: 10 * time.Minute}
}

// Validate names the first bad options.
func (o *CompareOptions) Validate() error {
	var errs []error
	if len(o.NPs) == 0 {
		errs = append(errs, errors.New("-np: want at least one process count"))
	}
	for _, n := range o.NPs {
		ar := o.allReduce(n)
		if err := ar.Validate(); err != nil {
			errs = append(errs, err)
			break // the other counts would repeat the same complaints
		}
	}
	if o.Rounds < 1 {
		errs = append(errs, fmt.Errorf("-rounds %d: want at least 1", o.Rounds))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("-timeout %v: want a positive duration (0 = 10m)", o.Timeout))
	}
	return errors.Join(errs...)
}

// allReduce is dmlrun's sweep for n ranks: float32 sum over the compared sizes.
func (o *CompareOptions) allReduce(n int) AllReduceOptions {
	ar := DefaultAllReduceOptions()
	ar.NP, ar.MinBytes, ar.MaxBytes, ar.Factor = n, o.MinBytes, o.MaxBytes, o.Factor
	ar.DType, ar.Op, ar.Iters, ar.Warmup = "float32", "sum", o.Iters, o.Warmup
	return ar
}

func (o *CompareOptions) timeout() time.Duration {
	if o.Timeout <= 0 {
		return 10 * time.Minute
	}
	return o.Timeout
}

// NPList is a comma-separated list of process counts ("2,4"). It is a
// flag.Value.
type NPList []int

// String implements flag.Value.
func (l NPList) String() string {
	s := make([]string, len(l))
	for i, n := range l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// Set implements flag.Value: it replaces the list.
func (l *NPList) Set(s string) error {
	var out NPList
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad process count %q in %q (want a comma-separated list of whole numbers, e.g. 2,4)", f, s)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}
