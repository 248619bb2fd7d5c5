package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dmlrun/dmlrun/launch"
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

// Comparison is the outcome of Compare: every number behind the table.
type Comparison struct {
	Options CompareOptions `json:"options"`
	Systems []SystemStatus `json:"systems"` // dmlrun, mpi, gloo
	Blocks  []CompareBlock `json:"blocks"`  // one per n, in Options.NPs order
}

// SystemStatus says whether a system was measured, and how.
type SystemStatus struct {
	Name      string   `json:"name"`
	Available bool     `json:"available"`
	Version   string   `json:"version,omitempty"`
	Argv      []string `json:"argv,omitempty"` // how one run is started ("N" stands for the process count)
	// Note says why an unavailable system was skipped: "not installed: ..."
	// or what failed while preparing it.
	Note string `json:"note,omitempty"`
}

// CompareBlock holds the results for one process count.
type CompareBlock struct {
	NP   int          `json:"np"`
	Rows []CompareRow `json:"rows"` // one per size of the sweep
	Runs []RunRecord  `json:"runs"` // every run, in the order they ran
}

// CompareRow is one size: each system's best over the rounds.
type CompareRow struct {
	Bytes   int64                   `json:"size_bytes"`
	Systems map[string]*Measurement `json:"systems"` // by system name; absent: never measured
	// Ratio is dmlrun's best busbw over each peer's best busbw (above 1:
	// dmlrun is faster), for the peers measured at this size.
	Ratio map[string]float64 `json:"dmlrun_ratio,omitempty"`
}

// Measurement is one system at one n and size, over the rounds. Rounds with
// wrong elements count in Wrong and AllBusBW but not in the best figures.
type Measurement struct {
	BusBW    float64   `json:"busbw_gbs"` // highest of the correct rounds
	TimeUS   float64   `json:"time_us"`   // lowest mean time per allreduce of the correct rounds
	Rounds   int       `json:"rounds"`    // correct rounds
	Wrong    int64     `json:"wrong"`     // wrong elements, summed over all rounds
	AllBusBW []float64 `json:"all_busbw_gbs"`
}

// RunRecord is one run of one system.
type RunRecord struct {
	System  string  `json:"system"`
	Round   int     `json:"round"`
	Seconds float64 `json:"seconds"`
	Sizes   int     `json:"sizes"`           // sizes it reported
	Error   string  `json:"error,omitempty"` // why it failed, with the end of its stderr
}

// add folds one round's row into m.
func (m *Measurement) add(r Row) {
	m.AllBusBW = append(m.AllBusBW, r.BusBW)
	if r.Wrong != 0 {
		m.Wrong += r.Wrong
		return
	}
	if m.Rounds == 0 || r.BusBW > m.BusBW {
		m.BusBW = r.BusBW
	}
	if m.Rounds == 0 || r.TimeUS < m.TimeUS {
		m.TimeUS = r.TimeUS
	}
	m.Rounds++
}

// newBlock makes the empty block for n processes over sizes.
func newBlock(n int, sizes []int64) CompareBlock {
	b := CompareBlock{NP: n, Rows: make([]CompareRow, len(sizes))}
	for i, s := range sizes {
		b.Rows[i] = CompareRow{Bytes: s, Systems: map[string]*Measurement{}}
	}
	return b
}

// add folds one run's rows into the block; rows of sizes outside the sweep
// are ignored (the runners reject them first).
func (b *CompareBlock) add(system string, rows []Row) {
	for _, r := range rows {
		i := slices.IndexFunc(b.Rows, func(cr CompareRow) bool { return cr.Bytes == r.Bytes })
		if i < 0 {
			continue
		}
		m := b.Rows[i].Systems[system]
		if m == nil {
			m = &Measurement{}
			b.Rows[i].Systems[system] = m
		}
		m.add(r)
	}
}

// finish computes the ratios.
func (b *CompareBlock) finish() {
	for i := range b.Rows {
		r := &b.Rows[i]
		r.Ratio = nil
		d := r.Systems[SystemDMLRun]
		if d == nil || d.Rounds == 0 {
			continue
		}
		for name, m := range r.Systems {
			if name == SystemDMLRun || m.Rounds == 0 || m.BusBW <= 0 {
				continue
			}
			if r.Ratio == nil {
				r.Ratio = map[string]float64{}
			}
			r.Ratio[name] = d.BusBW / m.BusBW
		}
	}
}

// parsePeerLine parses one line of a peer program's output:
//
//	bytes count time_us algbw_GBs busbw_GBs wrong
//
// Blank lines, comments (#) and lines that do not start with a number
// (mpirun's or torch's chatter) give ok == false; a line that starts with a
// number but is not a well-formed row is an error.
func parsePeerLine(line string) (r Row, ok bool, err error) {
	f := strings.Fields(line)
	if len(f) == 0 || strings.HasPrefix(f[0], "#") {
		return Row{}, false, nil
	}
	if _, err := strconv.ParseInt(f[0], 10, 64); err != nil {
		return Row{}, false, nil
	}
	bad := func(why string) (Row, bool, error) {
		return Row{}, false, fmt.Errorf("bad result line %q: %s (want: bytes count time_us algbw_GBs busbw_GBs wrong)", line, why)
	}
	if len(f) != 6 {
		return bad(fmt.Sprintf("%d fields", len(f)))
	}
	var ints [3]int64
	for i, j := range []int{0, 1, 5} {
		if ints[i], err = strconv.ParseInt(f[j], 10, 64); err != nil || ints[i] < 0 {
			return bad(fmt.Sprintf("field %d is not a count", j+1))
		}
	}
	var fl [3]float64
	for i := range fl {
		if fl[i], err = strconv.ParseFloat(f[2+i], 64); err != nil || math.IsNaN(fl[i]) || math.IsInf(fl[i], 0) || fl[i] < 0 {
			return bad(fmt.Sprintf("field %d is not a number", 3+i))
		}
	}
	r = Row{Bytes: ints[0], Count: ints[1], Type: "float32", Op: "sum", TimeUS: fl[0], AlgBW: fl[1], BusBW: fl[2], Wrong: ints[2]}
	if r.Bytes != 4*r.Count || r.Count == 0 {
		return bad(fmt.Sprintf("%d bytes is not %d float32 elements", r.Bytes, r.Count))
	}
	if r.TimeUS <= 0 {
		return bad("time is not positive")
	}
	return r, true, nil
}

// parsePeerOutput parses a peer's whole standard output and checks that it
// reported exactly the sizes of the sweep, in order. It returns the rows it
// could parse even when it also returns an error.
func parsePeerOutput(out []byte, sizes []int64) ([]Row, error) {
	var rows []Row
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		r, ok, err := parsePeerLine(sc.Text())
		if err != nil {
			return rows, err
		}
		if !ok {
			continue
		}
		if len(rows) >= len(sizes) || r.Bytes != sizes[len(rows)] {
			return rows, fmt.Errorf("reported size %d bytes after %d rows; the sweep is %v", r.Bytes, len(rows), sizes)
		}
		rows = append(rows, r)
	}
	if len(rows) < len(sizes) {
		return rows, fmt.Errorf("reported %d of %d sizes", len(rows), len(sizes))
	}
	return rows, nil
}

// system is one thing that Compare measures.
type system struct {
	status *SystemStatus
	run    func(ctx context.Context, n int) ([]Row, error)
}

// Compare measures dmlrun's allreduce (float32, sum) against Open MPI over
// TCP and torch.distributed's gloo backend, where installed, at the same
// sizes and process counts. For each n it runs Rounds rounds, each of them
// dmlrun's sweep (dmlrunArgv starts one worker, as for RunAllReduce), then
// MPI's, then gloo's, so that all three see the same machine load; it keeps
// each system's best per size, and prints one table to out. Progress, peer
// failures and worker logs go to log.
//
// A peer that is not installed is reported and skipped. A run that fails
// (or times out and is killed) is reported with the end of its stderr; the
// sizes it completed still count. Compare fails if dmlrun does (including
// wrong results) or if ctx ends, after printing what was measured; once the
// options are valid it returns the Comparison, error or not.
func Compare(ctx context.Context, o CompareOptions, dmlrunArgv []string, out, log io.Writer) (*Comparison, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.WorkDir == "" {
		dir, err := os.MkdirTemp("", "dmlrun-compare-")
		if err != nil {
			return nil, fmt.Errorf("making a directory to build the MPI benchmark in: %w", err)
		}
		defer os.RemoveAll(dir)
		o.WorkDir = dir
	}
	c := &Comparison{Options: o}
	systems := []system{dmlrunSystem(&o, dmlrunArgv, log), mpiSystem(ctx, &o), glooSystem(ctx, &o)}
	for _, s := range systems {
		c.Systems = append(c.Systems, *s.status)
		if !s.status.Available {
			fmt.Fprintf(log, "bench compare: %s: %s; skipped\n", s.status.Name, s.status.Note)
		}
	}

	var dmlrunErrs []error
	var stopped error
	total, done := 0, 0
	for _, s := range c.Systems {
		if s.Available {
			total += len(o.NPs) * o.Rounds
		}
	}
	progress := func(what string) {
		if o.Display != nil {
			o.Display.Update(launch.Progress{Phase: "compare " + what, Unit: "run", Step: done, Steps: total})
		}
	}
runs:
	for _, n := range o.NPs {
		ar := o.allReduce(n)
		c.Blocks = append(c.Blocks, newBlock(n, ar.sizes()))
		b := &c.Blocks[len(c.Blocks)-1]
		timedOut := map[string]bool{}
		for round := 1; round <= o.Rounds; round++ {
			for i, s := range systems {
				name := s.status.Name
				if !c.Systems[i].Available || timedOut[name] {
					continue
				}
				progress(fmt.Sprintf("%s n=%d round %d/%d", name, n, round, o.Rounds))
				rctx, cancel := context.WithTimeout(ctx, o.timeout())
				start := time.Now()
				rows, err := s.run(rctx, n)
				timedOut[name] = rctx.Err() == context.DeadlineExceeded
				cancel()
				rec := RunRecord{System: name, Round: round, Seconds: time.Since(start).Seconds(), Sizes: len(rows)}
				b.add(name, rows)
				if ctx.Err() != nil {
					b.Runs = append(b.Runs, rec)
					stopped = fmt.Errorf("bench compare interrupted during %s, n=%d, round %d: %w", name, n, round, ctx.Err())
					break runs
				}
				if timedOut[name] {
					err = fmt.Errorf("timed out after %v and was killed (%v); skipping its remaining rounds at n=%d", o.timeout(), err, n)
				}
				what := fmt.Sprintf("n=%d round %d/%d: %s", n, round, o.Rounds, name)
				if err != nil {
					rec.Error = err.Error()
					fmt.Fprintf(log, "bench compare: %s failed after %.1fs: %v\n", what, rec.Seconds, err)
					if name == SystemDMLRun {
						dmlrunErrs = append(dmlrunErrs, fmt.Errorf("%s: %w", what, err))
					}
				} else {
					fmt.Fprintf(log, "bench compare: %s: %d sizes in %.1fs\n", what, len(rows), rec.Seconds)
				}
				b.Runs = append(b.Runs, rec)
				done++
				progress(fmt.Sprintf("%s n=%d round %d/%d", name, n, round, o.Rounds))
			}
		}
	}
	for i := range c.Blocks {
		c.Blocks[i].finish()
	}
	c.WriteTable(out)
	if stopped != nil {
		return c, stopped
	}
	if len(dmlrunErrs) > 0 {
		return c, fmt.Errorf("dmlrun failed in %d run(s): %w", len(dmlrunErrs), errors.Join(dmlrunErrs...))
	}
	return c, nil
}

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

// runPeer runs argv in its own process group, with a deadline when timeout
// is positive, and returns its standard output. On failure the error carries
// the end of its standard error. When ctx ends, the process group and every
// descendant are killed: torch's spawned processes share the group, but
// mpirun puts each rank in a group of its own.
func runPeer(ctx context.Context, timeout time.Duration, argv []string) ([]byte, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		pid := cmd.Process.Pid
		kids := descendants(pid) // before the kill, while they still have a parent
		err := syscall.Kill(-pid, syscall.SIGKILL)
		for _, k := range kids {
			_ = syscall.Kill(k, syscall.SIGKILL)
		}
		return err
	}
	cmd.WaitDelay = 5 * time.Second // a grandchild holding the pipes open cannot hang Wait
	var stdout bytes.Buffer
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s: %w", filepath.Base(argv[0]), ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	if err != nil {
		if tail := stderr.tail(12); tail != "" {
			err = fmt.Errorf("%w; its stderr ends:\n%s", err, tail)
		}
	}
	return stdout.Bytes(), err
}

// descendants lists the processes below pid, children first.
func descendants(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			if k, err := strconv.Atoi(field); err == nil {
				out = append(out, k)
				out = append(out, descendants(k)...)
			}
		}
	}
	return out
}

// tailBuffer keeps about the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// tail is the last n non-blank lines, indented.
func (t *tailBuffer) tail(n int) string {
	b := t.buf
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	var lines []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "----------") {
			lines = append(lines, "    "+strings.TrimRight(l, " \r"))
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(s)
}

// nearestSize is the size in sizes closest to target on a log scale (the
// larger one on a tie), or 0 if sizes is empty.
func nearestSize(sizes []int64, target int64) int64 {
	best, bestD := int64(0), math.Inf(1)
	for _, s := range sizes {
		d := math.Abs(math.Log(float64(s) / float64(target)))
		if d < bestD-1e-9 || (math.Abs(d-bestD) <= 1e-9 && s > best) {
			best, bestD = s, d
		}
	}
	return best
}

// WriteTable prints the comparison: a header naming the systems, then one
// block per n with a line per size and summary lines at 16 MiB and 8 B (or
// the nearest sizes of the sweep).
func (c *Comparison) WriteTable(w io.Writer) {
	o := c.Options
	fmt.Fprintf(w, "# dmlrun bench compare: allreduce, float32, sum; best of %d interleaved rounds; %d iterations after %d warm-up per size\n",
		o.Rounds, o.Iters, o.Warmup)
	var peers []string
	for _, s := range c.Systems {
		if s.Name != SystemDMLRun {
			peers = append(peers, s.Name)
		}
		desc := strings.Join(s.Argv, " ")
		if s.Version != "" {
			desc = s.Version + ": " + desc
		}
		if !s.Available {
			desc = s.Note
			if s.Version != "" {
				desc = s.Version + ": " + desc
			}
		}
		fmt.Fprintf(w, "# %-7s %s\n", s.Name+":", desc)
	}
	fmt.Fprintf(w, "# busbw: GB/s (1e9 B/s), algbw x 2(n-1)/n, the highest of the rounds; us: mean time per allreduce, the lowest of the rounds\n")
	fmt.Fprintf(w, "# dmlrun/X: dmlrun's busbw over X's (above 1: dmlrun is faster); -: not measured; !: some rounds had wrong elements (left out)\n")

	hdr := []string{"size(B)", "dmlrun busbw"}
	for _, p := range peers {
		hdr = append(hdr, p+" busbw")
	}
	for _, p := range peers {
		hdr = append(hdr, "dmlrun/"+p)
	}
	hdr = append(hdr, "dmlrun us")
	for _, p := range peers {
		hdr = append(hdr, p+" us")
	}
	widths := make([]int, len(hdr))
	for i, h := range hdr {
		widths[i] = max(len(h), 10)
	}
	widths[0] = 11
	line := func(cells []string) {
		var sb strings.Builder
		for i, cell := range cells {
			if i > 0 {
				sb.WriteString("  ")
			}
			fmt.Fprintf(&sb, "%*s", widths[i], cell)
		}
		fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
	}
	systems := append([]string{SystemDMLRun}, peers...)
	for _, b := range c.Blocks {
		fmt.Fprintf(w, "\n# n=%d\n", b.NP)
		h := slices.Clone(hdr)
		h[0] = "#" + strings.Repeat(" ", max(0, widths[0]-1-len(h[0]))) + h[0]
		line(h)
		for _, r := range b.Rows {
			cells := []string{strconv.FormatInt(r.Bytes, 10)}
			for _, s := range systems {
				cells = append(cells, fmtMeasure(r.Systems[s], func(m *Measurement) string { return fmt.Sprintf("%.4g", m.BusBW) }))
			}
			for _, p := range peers {
				if v, ok := r.Ratio[p]; ok {
					cells = append(cells, fmt.Sprintf("%.2f", v))
				} else {
					cells = append(cells, "-")
				}
			}
			for _, s := range systems {
				cells = append(cells, fmtMeasure(r.Systems[s], func(m *Measurement) string { return fmt.Sprintf("%.1f", m.TimeUS) }))
			}
			line(cells)
		}
		sizes := make([]int64, len(b.Rows))
		for i, r := range b.Rows {
			sizes[i] = r.Bytes
		}
		var done []int64
		for _, target := range []int64{16 << 20, 8} {
			s := nearestSize(sizes, target)
			i := slices.IndexFunc(b.Rows, func(r CompareRow) bool { return r.Bytes == s })
			if i < 0 || slices.Contains(done, s) {
				continue
			}
			done = append(done, s)
			fmt.Fprintf(w, "# n=%d summary at %s\n", b.NP, summary(b.Rows[i], systems, s, target))
		}
		for _, run := range b.Runs {
			if run.Error != "" {
				msg := strings.ReplaceAll(run.Error, "\n", "\n#   ")
				fmt.Fprintf(w, "# n=%d round %d: %s failed after %.1fs: %s\n", b.NP, run.Round, run.System, run.Seconds, msg)
			}
		}
	}
}

// fmtMeasure formats m with f, "-" when there is no correct round, and a
// trailing "!" when some rounds were wrong.
func fmtMeasure(m *Measurement, f func(*Measurement) string) string {
	switch {
	case m == nil:
		return "-"
	case m.Rounds == 0:
		return "!"
	case m.Wrong > 0:
		return f(m) + "!"
	}
	return f(m)
}

// summary describes one row in a sentence.
func summary(r CompareRow, systems []string, size, target int64) string {
	var sb strings.Builder
	sb.WriteString(ByteSize(size).String())
	if size != target {
		fmt.Fprintf(&sb, " (nearest to %v)", ByteSize(target))
	}
	sb.WriteString(":")
	for i, s := range systems {
		if i > 0 {
			sb.WriteString(";")
		}
		m := r.Systems[s]
		if m == nil {
			fmt.Fprintf(&sb, " %s -", s)
			continue
		}
		if m.Rounds == 0 {
			fmt.Fprintf(&sb, " %s wrong results", s)
			continue
		}
		fmt.Fprintf(&sb, " %s %.4g GB/s %.4g us", s, m.BusBW, m.TimeUS)
		if v, ok := r.Ratio[s]; ok {
			fmt.Fprintf(&sb, " (dmlrun/%s %.2fx)", s, v)
		}
	}
	return sb.String()
}
