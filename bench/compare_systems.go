package bench

// The systems that Compare measures and how each is found and run:
// dmlrun's own sweep, and the peers (Open MPI, torch's gloo) when their
// toolchain is installed, probed and prepared once per comparison.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The systems of a comparison, in table order. dmlrun is always measured;
// the peers only where installed.
const (
	SystemDMLRun = "dmlrun"
	SystemMPI    = "mpi"  // Open MPI over TCP: bench/peers/mpi_allreduce.c under mpirun
	SystemGloo   = "gloo" // torch.distributed, gloo backend: bench/peers/gloo_allreduce.py
)

// Peer programs, looked up in CompareOptions.PeersDir, and the Python that
// runs the gloo one (Debian's, which python3-torch installs into).
const (
	mpiSource  = "mpi_allreduce.c"
	glooScript = "gloo_allreduce.py"
	python     = "/usr/bin/python3"
)

// mpirunFlags select Open MPI's TCP transport on loopback. pml ob1 makes the
// btl choice binding: otherwise the UCX pml, where present, may take over and
// use shared memory.
var mpirunFlags = []string{"--allow-run-as-root", "--oversubscribe", "--mca", "pml", "ob1",
	"--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", "lo"}

// dmlrunSystem runs dmlrun's own sweep.
func dmlrunSystem(o *CompareOptions, argv []string, log io.Writer) system {
	st := &SystemStatus{Name: SystemDMLRun, Available: true, Argv: argv}
	return system{status: st, run: func(ctx context.Context, n int) ([]Row, error) {
		res, err := RunAllReduce(ctx, o.allReduce(n), argv, io.Discard, log)
		if res == nil {
			return nil, err
		}
		// RunAllReduce fails the run if any rank differs; such rows are no
		// measurement.
		rows := slices.DeleteFunc(slices.Clone(res.Rows), func(r Row) bool { return !r.Identical })
		return rows, err
	}}
}

// mpiSystem builds the MPI benchmark, if Open MPI is installed, and runs it
// under mpirun over TCP.
func mpiSystem(ctx context.Context, o *CompareOptions) system {
	st := &SystemStatus{Name: SystemMPI}
	s := system{status: st}
	var missing []string
	for _, tool := range []string{"mpicc", "mpirun"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		st.Note = fmt.Sprintf("not installed (%s not on PATH)", strings.Join(missing, " and "))
		return s
	}
	src := filepath.Join(o.PeersDir, mpiSource)
	if _, err := os.Stat(src); err != nil {
		st.Note = fmt.Sprintf("peer program missing: %v (set -peers)", err)
		return s
	}
	if v, err := runPeer(ctx, time.Minute, []string{"mpirun", "--version"}); err == nil {
		st.Version = firstLine(v)
	}
	bin := filepath.Join(o.WorkDir, "mpi_allreduce")
	if _, err := runPeer(ctx, 5*time.Minute, []string{"mpicc", "-O2", "-o", bin, src}); err != nil {
		st.Note = fmt.Sprintf("compiling %s with mpicc failed: %v", src, err)
		return s
	}
	st.Available = true
	st.Argv = append(append([]string{"mpirun", "-np", "N"}, mpirunFlags...), bin)
	s.run = func(ctx context.Context, n int) ([]Row, error) {
		argv := append(append([]string{"mpirun", "-np", strconv.Itoa(n)}, mpirunFlags...), bin)
		return runSweep(ctx, o, n, append(argv, sweepArgs(o)...))
	}
	return s
}

// glooSystem runs the gloo benchmark, if torch (with gloo) imports.
func glooSystem(ctx context.Context, o *CompareOptions) system {
	st := &SystemStatus{Name: SystemGloo}
	s := system{status: st}
	v, err := runPeer(ctx, 2*time.Minute, []string{python, "-c",
		"import torch, torch.distributed as d; assert d.is_available() and d.is_gloo_available(), 'no gloo'; print(torch.__version__)"})
	if err != nil {
		st.Note = fmt.Sprintf("not installed (%s cannot import torch with gloo: %v)", python, err)
		return s
	}
	st.Version = "torch " + firstLine(v)
	script := filepath.Join(o.PeersDir, glooScript)
	if _, err := os.Stat(script); err != nil {
		st.Note = fmt.Sprintf("peer program missing: %v (set -peers)", err)
		return s
	}
	st.Available = true
	st.Argv = []string{python, script, "N"}
	s.run = func(ctx context.Context, n int) ([]Row, error) {
		return runSweep(ctx, o, n, append([]string{python, script, strconv.Itoa(n)}, sweepArgs(o)...))
	}
	return s
}

// sweepArgs are the peers' arguments after the process count.
func sweepArgs(o *CompareOptions) []string {
	return []string{strconv.FormatInt(int64(o.MinBytes), 10), strconv.FormatInt(int64(o.MaxBytes), 10),
		strconv.Itoa(o.Factor), strconv.Itoa(o.Iters), strconv.Itoa(o.Warmup)}
}

// runSweep runs a peer program and parses its rows.
func runSweep(ctx context.Context, o *CompareOptions, n int, argv []string) ([]Row, error) {
	out, err := runPeer(ctx, 0, argv)
	ar := o.allReduce(n)
	rows, perr := parsePeerOutput(out, ar.sizes())
	if err != nil {
		return rows, err
	}
	if perr != nil {
		return rows, fmt.Errorf("%s: %w", argv[0], perr)
	}
	return rows, nil
}
