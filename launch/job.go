package launch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// NodeHello is the first line a launched node reads: what the launcher
// decided for it, and the cluster secret.
type NodeHello struct {
	Secret string `json:"secret"`
	Host   string `json:"host"`
	Slot   int    `json:"slot"`
	Nodes  int    `json:"nodes"`
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
	Extra   any  `json:"extra,omitempty"`
	// Fault is the error of a node that fails on its own (a bad file, an
	// output it cannot write, a diverging model), sent before it exits: the
	// launcher stops the job with that cause instead of treating the node as
	// lost, since another node would fail the same way.
	Fault string `json:"fault,omitempty"`
	// Model is the model.json the node wrote (the lowest rank does).
	Model string `json:"model,omitempty"`
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

// RunJob starts one node per spec, introduces them to each other, forwards
// their logs to log, and waits for all of them. A node that fails before
// training starts fails the job (the others are stopped); one lost during
// training is reported, and the others recover without it. The job succeeds
// when at least one node finished and all that finished hold the same θ; it
// then prints "all N nodes hold identical θ (sha256 ...)" to out, N counting
// the survivors. Cancelling ctx (Ctrl-C) forwards SIGINT to the nodes, then
// stops them.
func RunJob(ctx context.Context, specs []Spec, hellos []NodeHello, out, log io.Writer) (*JobResult, error) {
	return RunJobRestarting(ctx, specs, hellos, 0, out, log)
}

// RunJobRestarting is RunJob that restarts a node lost during training, up
// to maxRestarts times per node (as torchrun does); a restarted node joins
// the running ring.
func RunJobRestarting(ctx context.Context, specs []Spec, hellos []NodeHello, maxRestarts int, out, log io.Writer) (*JobResult, error) {
	g, err := Start(ctx, specs, log)
	if err != nil {
		return nil, err
	}
	defer g.Stop()
	n := len(specs)
	for i := range specs {
		if err := g.Send(i, hellos[i]); err != nil {
			return nil, err
		}
	}
	gossip := make([]string, n)
	reports := make([]*NodeReport, n)
	var failures []error
	exited, started := 0, 0
	interrupted, training := false, false
	var lostNodes []error
	restarts := make([]int, n)
	done := ctx.Done()
	for exited < n {
		var ev Event
		select {
		case ev = <-g.events:
		case <-done:
			interrupted, done = true, nil
			fmt.Fprintln(log, "dmlrun: interrupted: stopping every node")
			g.Signal(syscall.SIGINT)
			go func() { time.Sleep(5 * time.Second); g.Stop() }()
			continue
		}
		if ev.Exited {
			exited++
			if ev.Err != nil && !interrupted && training && len(failures) == 0 {
				if restarts[ev.Index] < maxRestarts && !allDone(reports) {
					restarts[ev.Index]++
					fmt.Fprintf(log, "dmlrun: lost %v; restarting it (%d of %d)\n", ExitError("node "+g.Label(ev.Index), ev.Err), restarts[ev.Index], maxRestarts)
					if err := g.Restart(ev.Index); err == nil {
						exited--
						if err := g.Send(ev.Index, hellos[ev.Index]); err == nil {
							continue
						}
					}
				}
				fmt.Fprintf(log, "dmlrun: lost %v; the others go on without it\n", ExitError("node "+g.Label(ev.Index), ev.Err))
				lostNodes = append(lostNodes, ExitError("node "+g.Label(ev.Index), ev.Err))
				continue
			}
			// Before training, only the first failure counts: the launcher
			// stops the others.
			if ev.Err != nil && !interrupted && len(failures) == 0 {
				err := ExitError("node "+g.Label(ev.Index), ev.Err)
				if isSSH(specs[ev.Index].Argv) && exitCode(ev.Err) == 255 {
					err = fmt.Errorf("%w: ssh could not reach or log in to the host (see its lines above)", err)
				}
				failures = append(failures, err)
				go g.Stop() // one node failed: stop the rest rather than wait for their timeouts
			}
			continue
		}
		var r NodeReport
		if json.Unmarshal(ev.Line, &r) != nil {
			continue
		}
		if r.Gossip != "" {
			first := gossip[ev.Index] == ""
			gossip[ev.Index] = r.Gossip
			switch {
			case first && started+1 == n:
				started++
				for i := range specs {
					_ = g.Send(i, JoinList{Join: gossip})
				}
			case first:
				started++
			case started == n: // a restarted node: it joins the running ring
				_ = g.Send(ev.Index, JoinList{Join: gossip})
			}
		}
		training = training || r.Started
		if r.Fault != "" && !interrupted {
			if len(failures) == 0 {
				failures = append(failures, fmt.Errorf("node %s: %s", g.Label(ev.Index), r.Fault))
				fmt.Fprintf(log, "dmlrun: node %s failed: %s; stopping the job\n", g.Label(ev.Index), r.Fault)
				go g.Stop()
			}
			continue
		}
		if r.Theta != "" || r.Extra != nil { // a result (a benchmark's may hold no θ)
			reports[ev.Index] = &r
		}
	}
	if interrupted {
		return nil, errors.New("interrupted")
	}
	if len(failures) > 0 {
		return nil, errors.Join(failures...)
	}
	res := &JobResult{}
	var digests []string
	for i, r := range reports {
		if r == nil {
			if training {
				continue // lost during training: reported above
			}
			return nil, fmt.Errorf("node %s exited without reporting its result", g.Label(i))
		}
		res.Reports = append(res.Reports, *r)
		digests = append(digests, r.Theta)
	}
	if len(digests) == 0 {
		return nil, fmt.Errorf("every node was lost: %w", errors.Join(lostNodes...))
	}
	if digests[0] == "" && len(slices.Compact(slices.Sorted(slices.Values(digests)))) == 1 {
		return res, nil // a benchmark that trained nothing
	}
	n = len(digests)
	if uniq := slices.Compact(slices.Sorted(slices.Values(digests))); len(uniq) != 1 {
		var lines []string
		for i, r := range reports {
			if r != nil {
				lines = append(lines, fmt.Sprintf("node %s (rank %d): %s", g.Label(i), r.Rank, r.Theta))
			}
		}
		return res, fmt.Errorf("the nodes hold different θ:\n  %s", strings.Join(lines, "\n  "))
	}
	res.Theta = digests[0]
	model := ""
	for _, r := range res.Reports {
		model = cmp.Or(model, r.Model)
	}
	if model == "" {
		return res, errors.New("the nodes finished but none reported writing model.json")
	}
	fmt.Fprintf(out, "all %d nodes hold identical θ (sha256 %s)\n", n, res.Theta)
	fmt.Fprintf(out, "model written to %s\n", model)
	return res, nil
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
