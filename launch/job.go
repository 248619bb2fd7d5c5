package launch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// NodeHello is the first line a launched node reads: what the launcher
// decided for it, and the cluster secret.
type NodeHello struct {
	Secret string `json:"secret"`
	Host   string `json:"host"` // the name the others reach it by
	Slot   int    `json:"slot"`
	Nodes  int    `json:"nodes"` // how many processes the job has
	// Extra is what the launched program needs beyond this (a benchmark
	// rank's options); the worker reads it with Attach.
	Extra any `json:"extra,omitempty"`
}

// NodeReport is a line a launched node writes: its gossip address once it
// listens, then its final θ digest.
type NodeReport struct {
	Gossip string `json:"gossip,omitempty"`
	Rank   int    `json:"rank"`
	Theta  string `json:"theta_sha256,omitempty"`
	// Started says the node's step loop runs: from then on the launcher
	// treats a lost node as a failure the others survive.
	Started bool `json:"started,omitempty"`
	Steps   int  `json:"steps,omitempty"`
	// Extra is a result beyond θ (a benchmark's statistics); a report with
	// Theta or Extra is the node's result, its last line.
	Extra any `json:"extra,omitempty"`
	// Part is a piece of the result sent as soon as it is known (a
	// benchmark's row per size; see Child.SendPart), for Job.OnPart.
	Part json.RawMessage `json:"part,omitempty"`
	// Fault is the error of a node that fails on its own (a bad file, an
	// output it cannot write, a diverging model), sent before it exits: the
	// launcher stops the job with that cause instead of treating the node as
	// lost, since another node would fail the same way.
	Fault string `json:"fault,omitempty"`
	// Model is the model.json the node wrote (the lowest rank does).
	Model string `json:"model,omitempty"`
	// Log is a line for the launcher's terminal (see NoticeHandler).
	Log *LogLine `json:"log,omitempty"`
	// Progress is the node's live state, sent a few times a second.
	Progress *Progress `json:"progress,omitempty"`
	// Summary is the node's account of the run, with its result.
	Summary *RunSummary `json:"summary,omitempty"`
	// Output is a piece of the node's output (whole lines), for a job whose
	// results travel back to the launcher (see Job.Output).
	Output string `json:"output,omitempty"`
	// Exchange is the node's vector of one exchange round (see
	// Child.Exchange): a sum over the nodes, relayed by the launcher, for
	// jobs that have no ring of their own.
	Exchange *Exchange `json:"exchange,omitempty"`
}

// Exchange is one node's part of an exchange round: V is added up over
// every node of the job, and each receives the sum as an ExchangeSum.
type Exchange struct {
	Round int       `json:"round"`
	V     []float64 `json:"v"`
}

// ExchangeSum is the launcher's answer to an exchange round: the sum of
// every node's V.
type ExchangeSum struct {
	Round int       `json:"round"`
	Sum   []float64 `json:"sum"`
}

// Progress is what a node reports of its run as it goes.
type Progress struct {
	Phase   string  `json:"phase"`          // e.g. "loading rows", "training", "recovering"
	Unit    string  `json:"unit,omitempty"` // what Step counts: "" is training steps (with loss and samples/s), e.g. "size" for a sweep
	Step    int     `json:"step"`           // steps done
	Steps   int     `json:"steps"`          // of the whole run
	Epoch   int     `json:"epoch"`
	Loss    float64 `json:"loss"`
	HasLoss bool    `json:"has_loss"`
	Samples int64   `json:"samples"` // rows processed by the whole ring so far
	World   int     `json:"world"`
	Rank    int     `json:"rank"`
}

// RunSummary is a finished node's account of the run, for the launcher's
// last lines.
type RunSummary struct {
	Steps         int     `json:"steps"`
	WallSeconds   float64 `json:"wall_s"`
	SamplesPerSec float64 `json:"samples_per_s"`
	TrainLoss     float64 `json:"train_loss"`
	TestLoss      float64 `json:"test_loss"`
	Metric        string  `json:"metric,omitempty"` // "accuracy" or "r2"
	Value         float64 `json:"value"`
	Recoveries    int     `json:"recoveries"`
	Stopped       string  `json:"stopped,omitempty"` // why training stopped early
	Best          string  `json:"best,omitempty"`    // a search's kept candidate, by its settings
	OutputDir     string  `json:"output_dir,omitempty"`
}

// JoinList is the launcher's answer: every node's gossip address.
type JoinList struct {
	Join []string `json:"join"`
}

// JobResult is what the nodes reported.
type JobResult struct {
	Reports []NodeReport // one per node that finished, by launch order
	Theta   string       // the θ digest all of them hold
}

// Job is a training job to run: one node per spec.
type Job struct {
	Specs  []Spec
	Hellos []NodeHello // one per spec
	// MaxRestarts restarts a node lost during training up to this many
	// times (as torchrun does); a restarted node joins the running ring.
	MaxRestarts int
	// Out receives the result lines ("all N nodes hold identical θ ...").
	Out io.Writer
	// Display shows the launcher's lines, the nodes' notices and the
	// progress.
	Display *Display
	// Verbose shows every line of every node's log on the display, with its
	// label, instead of only the notices.
	Verbose bool
	// Log, when set, receives every line of every node's log, with its
	// label, instead of the display (a benchmark's worker logs).
	Log io.Writer
	// Noun is what messages call one process: "node" when empty, "rank"
	// for a benchmark.
	Noun string
	// StartTimeout, when positive, fails the job if the rendezvous is not
	// complete within it (a benchmark's ranks start at once or not at all).
	StartTimeout time.Duration
	// OnJoined, when set, is called once every node has reported its
	// address and was sent the join list.
	OnJoined func()
	// OnPart, when set, receives each NodeReport.Part as it arrives, with
	// the index of the node that sent it.
	OnPart func(i int, part json.RawMessage)
	// Output, when set, has one writer per spec: node i's Output pieces
	// are written to Output[i] in the order it sent them. A write error
	// stops the job and is its error.
	Output []io.Writer
	// Phase is what the display shows until a node reports progress
	// (default "gathering nodes").
	Phase string
}

// RunJob starts the job's nodes, introduces them to each other, shows their
// notices and progress, and waits for all of them. A node that fails before
// training starts fails the job (the others are stopped); one lost during
// training is reported, and the others recover without it. The job succeeds
// when at least one node finished, all that finished hold the same θ, and
// one wrote model.json; it then prints a summary and "all N nodes hold
// identical θ (sha256 ...)" to Out, N counting the survivors. A job that
// fails returns a *JobError naming the root cause. Cancelling ctx (Ctrl-C)
// forwards SIGINT to the nodes, then stops them.
func RunJob(ctx context.Context, job Job) (*JobResult, error) {
	if job.Display == nil {
		job.Display = NewDisplay(io.Discard, ProgressNone)
	}
	job.Out = cmp.Or[io.Writer](job.Out, io.Discard)
	job.Noun = cmp.Or(job.Noun, "node")
	var raw io.Writer = io.Discard
	switch {
	case job.Log != nil:
		raw = job.Log
	case job.Verbose:
		raw = job.Display
	}
	g, err := Start(ctx, job.Specs, raw)
	if err != nil {
		return nil, err
	}
	defer g.Stop()
	r := &jobRun{Job: job, g: g, n: len(job.Specs), d: job.Display}
	return r.run(ctx)
}

// jobRun is the state of one RunJob.
type jobRun struct {
	Job
	g  *Group
	d  *Display
	n  int
	fs failures

	gossip      []string
	reports     []*NodeReport
	ranks       []int // each node's last reported rank (-1: none yet)
	exited      int
	started     int
	interrupted bool
	training    bool
	restarts    []int
	err         error          // the job's own failure (the rendezvous timed out), not a node's
	heard       []bool         // each node has sent a protocol line
	rounds      map[int]*round // exchange rounds not yet complete
	outErr      error          // the first error writing Output
}

// round is an exchange round that not every node has joined yet.
type round struct {
	sum  []float64
	from []bool
	in   int
}

func (r *jobRun) run(ctx context.Context) (*JobResult, error) {
	r.gossip, r.reports, r.ranks, r.restarts, r.heard = make([]string, r.n), make([]*NodeReport, r.n), make([]int, r.n), make([]int, r.n), make([]bool, r.n)
	for i := range r.ranks {
		r.ranks[i] = -1
	}
	for i := range r.Specs {
		if err := r.g.Send(i, r.Hellos[i]); err != nil {
			return nil, err
		}
	}
	r.d.Phase(cmp.Or(r.Phase, "gathering nodes"))
	done := ctx.Done()
	var startTimeout <-chan time.Time
	if r.StartTimeout > 0 {
		t := time.NewTimer(r.StartTimeout)
		defer t.Stop()
		startTimeout = t.C
	}
	for r.exited < r.n {
		var ev Event
		select {
		case ev = <-r.g.events:
		case <-startTimeout:
			if r.started < r.n && !r.fs.failed() && r.err == nil {
				r.err = fmt.Errorf("waiting for the %ss to start: %d of %d reported within %v", r.Noun, r.started, r.n, r.StartTimeout)
				r.d.Printf("dmlrun: %v; stopping the job", r.err)
				go r.g.Stop()
			}
			continue
		case <-done:
			r.interrupted, done = true, nil
			r.d.Printf("dmlrun: interrupted: stopping every %s", r.Noun)
			r.g.Signal(syscall.SIGINT)
			go func() { time.Sleep(5 * time.Second); r.g.Stop() }()
			continue
		}
		if ev.Exited {
			r.exit(ev)
			continue
		}
		r.heard[ev.Index] = true
		if ev.Output != nil {
			r.output(ev.Index, ev.Output)
			continue
		}
		var rep NodeReport
		if json.Unmarshal(ev.Line, &rep) == nil {
			r.report(ev.Index, rep)
		}
	}
	r.d.Close()
	if r.interrupted {
		return nil, errors.New("interrupted")
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.outErr != nil {
		return nil, r.outErr
	}
	if err := r.fs.jobError(false); err != nil {
		return nil, err
	}
	return r.result()
}

// node names child i for messages: its label, host and last rank.
func (r *jobRun) node(i int) nodeID {
	return nodeID{Noun: r.Noun, Label: r.g.Label(i), Host: r.Hellos[i].Host, Rank: r.ranks[i]}
}

// exit handles child ev.Index's exit.
func (r *jobRun) exit(ev Event) {
	r.exited++
	if ev.Err == nil || r.interrupted {
		return
	}
	i := ev.Index
	if r.training && !r.fs.failed() {
		if r.restarts[i] < r.MaxRestarts && !allDone(r.reports) {
			r.restarts[i]++
			r.d.Printf("dmlrun: lost %v; restarting it (%d of %d)", ExitError(r.Noun+" "+r.g.Label(i), ev.Err), r.restarts[i], r.MaxRestarts)
			if err := r.g.Restart(i); err == nil {
				r.exited--
				if err := r.g.Send(i, r.Hellos[i]); err == nil {
					return
				}
			}
		}
		r.d.Printf("dmlrun: lost %v; the others go on without it", ExitError(r.Noun+" "+r.g.Label(i), ev.Err))
		r.fs.add(failure{node: r.node(i), exit: ev.Err, last: r.g.LastError(i), lost: true})
		return
	}
	// Before training, a node's exit fails the job: the launcher stops the
	// others rather than wait for their timeouts.
	f := failure{node: r.node(i), exit: ev.Err, last: r.g.LastError(i)}
	switch {
	case isSSH(r.Specs[i].Argv) && exitCode(ev.Err) == 255 && r.heard[i]:
		// It ran (it spoke to the launcher): ssh says 255 for a remote
		// process killed by a signal, or a connection lost.
		f.note = "ssh lost the remote process (killed by a signal, or the connection broke)"
	case isSSH(r.Specs[i].Argv) && exitCode(ev.Err) == 255:
		f.note = "ssh could not reach or log in to the host (see its lines above)"
	}
	if r.fs.add(f) {
		go r.g.Stop()
	}
}

// report handles a protocol line from child i.
func (r *jobRun) report(i int, rep NodeReport) {
	switch {
	case rep.Log != nil:
		if !r.Verbose { // verbose shows the raw line already
			r.d.Node(r.g.Label(i), *rep.Log)
		}
		return
	case rep.Part != nil:
		if r.OnPart != nil {
			r.OnPart(i, rep.Part)
		}
		return
	case rep.Progress != nil:
		p := *rep.Progress
		if p.World > 0 {
			r.ranks[i] = p.Rank
		}
		if p.World > 0 && p.Rank == 0 {
			r.d.Update(p)
		}
		return
	case rep.Output != "":
		r.output(i, []byte(rep.Output))
		return
	case rep.Exchange != nil:
		r.exchange(i, *rep.Exchange)
		return
	}
	if rep.Gossip != "" {
		r.rendezvous(i, rep.Gossip)
	}
	r.training = r.training || rep.Started
	if rep.Fault != "" && !r.interrupted {
		if r.fs.add(failure{node: r.node(i), fault: rep.Fault, last: rep.Fault}) {
			r.d.Printf("dmlrun: %s %s failed: %s; stopping the job", r.Noun, r.g.Label(i), rep.Fault)
			go r.g.Stop()
		}
		return
	}
	if rep.Theta != "" || rep.Extra != nil { // a result (a benchmark's may hold no θ)
		r.reports[i] = &rep
	}
}

// output writes a piece of child i's output to Output[i].
func (r *jobRun) output(i int, piece []byte) {
	if r.outErr != nil {
		return
	}
	var err error
	if i >= len(r.Output) || r.Output[i] == nil {
		err = fmt.Errorf("node %s sent output, but the job has nowhere to write it", r.g.Label(i))
	} else if _, err = r.Output[i].Write(piece); err != nil {
		err = fmt.Errorf("writing the output of node %s: %w", r.g.Label(i), err)
	}
	if err != nil {
		r.outErr = err
		r.d.Printf("dmlrun: %v; stopping the job", err)
		go r.g.Stop()
	}
}

// exchange adds child i's vector to its round; when every node has given
// its vector, each gets the sum. A vector whose length differs from the
// others' is a fault (the nodes do not see the same data) that stops the
// job.
func (r *jobRun) exchange(i int, e Exchange) {
	if r.rounds == nil {
		r.rounds = map[int]*round{}
	}
	rd := r.rounds[e.Round]
	if rd == nil {
		rd = &round{sum: make([]float64, len(e.V)), from: make([]bool, r.n)}
		r.rounds[e.Round] = rd
	}
	var fault string
	switch {
	case rd.from[i]:
		fault = fmt.Sprintf("exchange round %d: sent twice", e.Round)
	case len(e.V) != len(rd.sum):
		fault = fmt.Sprintf("exchange round %d: %d values where another node sent %d (do all hosts see the same files?)", e.Round, len(e.V), len(rd.sum))
	}
	if fault != "" {
		if r.fs.add(failure{node: r.node(i), fault: fault, last: fault}) {
			r.d.Printf("dmlrun: node %s failed: %s; stopping the job", r.g.Label(i), fault)
			go r.g.Stop()
		}
		return
	}
	rd.from[i] = true
	rd.in++
	for k, x := range e.V {
		rd.sum[k] += x
	}
	if rd.in < r.n {
		return
	}
	delete(r.rounds, e.Round)
	for j := range r.Specs {
		_ = r.g.Send(j, ExchangeSum{Round: e.Round, Sum: rd.sum})
	}
}

// rendezvous records child i's gossip address and, once every node has
// one, sends them the join list; a restarted node gets it at once.
func (r *jobRun) rendezvous(i int, addr string) {
	first := r.gossip[i] == ""
	r.gossip[i] = addr
	switch {
	case first && r.started+1 == r.n:
		r.started++
		for j := range r.Specs {
			_ = r.g.Send(j, JoinList{Join: r.gossip})
		}
		if r.OnJoined != nil {
			r.OnJoined()
		}
	case first:
		r.started++
	case r.started == r.n: // a restarted node: it joins the running ring
		_ = r.g.Send(i, JoinList{Join: r.gossip})
	}
}

// result checks what the finished nodes reported and prints the summary.
func (r *jobRun) result() (*JobResult, error) {
	res := &JobResult{}
	var digests []string
	for i, rep := range r.reports {
		if rep == nil {
			if r.training {
				continue // lost during training: reported above
			}
			return nil, fmt.Errorf("%s %s exited without reporting its result", r.Noun, r.g.Label(i))
		}
		res.Reports = append(res.Reports, *rep)
		digests = append(digests, rep.Theta)
	}
	if len(digests) == 0 {
		return nil, r.fs.jobError(true)
	}
	if digests[0] == "" && len(slices.Compact(slices.Sorted(slices.Values(digests)))) == 1 {
		return res, nil // a benchmark that trained nothing
	}
	if uniq := slices.Compact(slices.Sorted(slices.Values(digests))); len(uniq) != 1 {
		var lines []string
		for i, rep := range r.reports {
			if rep != nil {
				lines = append(lines, fmt.Sprintf("node %s (rank %d): %s", r.g.Label(i), rep.Rank, rep.Theta))
			}
		}
		return res, fmt.Errorf("the nodes hold different θ:\n  %s", strings.Join(lines, "\n  "))
	}
	res.Theta = digests[0]
	var model string
	var sum *RunSummary
	for _, rep := range res.Reports {
		model = cmp.Or(model, rep.Model)
		if sum == nil || rep.Model != "" {
			sum = cmp.Or(rep.Summary, sum)
		}
	}
	if model == "" {
		return res, errors.New("the nodes finished but none reported writing model.json")
	}
	if sum != nil {
		fmt.Fprintln(r.Out, sum.line())
	}
	fmt.Fprintf(r.Out, "all %d nodes hold identical θ (sha256 %s)\n", len(digests), res.Theta)
	fmt.Fprintf(r.Out, "model written to %s\n", model)
	if logs := r.logDir(); logs != "" {
		fmt.Fprintf(r.Out, "logs in %s\n", logs)
	}
	return res, nil
}

// logDir is the directory of the nodes' log files, when they are files.
func (r *jobRun) logDir() string {
	for _, s := range r.Specs {
		if f, ok := s.Log.(interface{ Name() string }); ok {
			return filepath.Dir(f.Name())
		}
	}
	return ""
}

func isSSH(argv []string) bool {
	return len(argv) > 0 && strings.HasSuffix(argv[0], "ssh")
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// allDone reports whether some node already finished (then a lost node is
// not worth restarting).
func allDone(reports []*NodeReport) bool {
	for _, r := range reports {
		if r != nil {
			return true
		}
	}
	return false
}

// line is the summary's one line, e.g. "done: 200 steps in 3.2s (61000
// samples/s), train loss 0.31, test accuracy 0.91, 1 recovery".
func (s *RunSummary) line() string {
	wall := time.Duration(s.WallSeconds * float64(time.Second)).Round(time.Millisecond)
	out := fmt.Sprintf("done: %d steps in %v (%.0f samples/s)", s.Steps, wall, s.SamplesPerSec)
	if s.Metric != "" {
		out += fmt.Sprintf(", train loss %.6g, test loss %.6g, test %s %.6g", s.TrainLoss, s.TestLoss, s.Metric, s.Value)
	}
	if s.Best != "" {
		out += "; the search kept " + s.Best
		if s.OutputDir != "" {
			out += " (every candidate in " + filepath.Join(s.OutputDir, "search.csv") + ")"
		}
	}
	if s.Stopped != "" {
		out += "; stopped early: " + s.Stopped
	}
	switch s.Recoveries {
	case 0:
	case 1:
		out += ", 1 recovery"
	default:
		out += fmt.Sprintf(", %d recoveries", s.Recoveries)
	}
	return out
}
