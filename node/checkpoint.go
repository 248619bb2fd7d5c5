package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// checkpoint is a node's whole state: what -resume needs to go on exactly
// where a run stopped, and what a member behind or joining receives from
// the ring (Encode): θ, the optimizer's and the stopping rules' state and
// the step (which fixes the epoch and the position in its permutation),
// and the data's shape, so that a node can build its models without the
// agreement of the job's first ring.
type checkpoint struct {
	RunDigest string     `json:"run_digest"`
	Step      int        `json:"step"`
	Theta     []float64  `json:"theta"`
	OptState  []float64  `json:"optimizer_state"`
	WorldSize int        `json:"world_size"`
	Written   time.Time  `json:"written"`
	Data      *dataShape `json:"data"`
}

// dataShape is what the nodes of a job agree on about the data.
type dataShape struct {
	Rows        int       `json:"rows"`
	Features    int       `json:"features"`
	Classes     int       `json:"classes"`
	Mean        []float64 `json:"mean,omitempty"`
	Std         []float64 `json:"std,omitempty"`
	ClassCounts []float64 `json:"class_counts,omitempty"`
}

func (t *trainer) checkpointPath() string {
	return filepath.Join(t.cfg.Checkpoint.Dir, "checkpoint.json")
}

// snapshot encodes this node's state as a checkpoint.
func (t *trainer) snapshot() ([]byte, error) {
	if t.cands == nil {
		return nil, errors.New("no state to send: the data's shape is not known yet")
	}
	d := t.data
	return json.Marshal(checkpoint{RunDigest: t.cfg.Digest(), Step: t.done, Theta: t.appendTheta(nil),
		OptState: t.appendState(nil), WorldSize: t.comm().Size(), Written: time.Now().UTC(),
		Data: &dataShape{Rows: d.rows, Features: d.features, Classes: d.classes, Mean: d.mean, Std: d.std, ClassCounts: d.classCounts}})
}

// saveCheckpoint writes the state atomically (rank 0 only: every node holds
// the same θ).
func (t *trainer) saveCheckpoint() error {
	if t.comm().Rank() != 0 {
		return nil
	}
	b, err := t.snapshot()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(t.checkpointPath(), b); err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", t.done, err)
	}
	t.log.Debug("checkpoint saved", "step", t.done, "path", t.checkpointPath())
	return nil
}

// decodeCheckpoint parses a checkpoint and checks that the job digest
// wrote it and that its data shape is whole.
func decodeCheckpoint(b []byte, digest string) (checkpoint, error) {
	var ck checkpoint
	if err := json.Unmarshal(b, &ck); err != nil {
		return checkpoint{}, err
	}
	s := ck.Data
	switch {
	case ck.RunDigest != digest:
		return checkpoint{}, fmt.Errorf("written by another job configuration (run digest %.12s, this one %.12s)", ck.RunDigest, digest)
	case s == nil:
		return checkpoint{}, errors.New("no data shape (written by an older dmlrun?)")
	case s.Rows <= 0 || s.Features <= 0 || s.Classes < 0 || s.Classes > maxClasses:
		return checkpoint{}, fmt.Errorf("bad data shape: %d rows, %d features, %d classes", s.Rows, s.Features, s.Classes)
	case (s.Mean != nil || s.Std != nil) && (len(s.Mean) != s.Features || len(s.Std) != s.Features):
		return checkpoint{}, fmt.Errorf("standardization of %d and %d features for %d", len(s.Mean), len(s.Std), s.Features)
	case !finite(s.Mean) || !finite(s.Std) || !finite(s.ClassCounts):
		return checkpoint{}, errors.New("a data shape that is not finite")
	}
	return ck, nil
}

// fits checks a checkpoint against the run that would go on from it: its
// params parameters and stateLen optimizer values, a step in 0..steps-1
// (steps > 0), and nothing non-finite.
func (ck checkpoint) fits(params, stateLen, steps int) error {
	switch {
	case len(ck.Theta) != params || len(ck.OptState) != stateLen:
		return fmt.Errorf("holds %d parameters and %d optimizer values, the model has %d and %d", len(ck.Theta), len(ck.OptState), params, stateLen)
	case steps > 0 && (ck.Step < 0 || ck.Step >= steps):
		return fmt.Errorf("is at step %d, outside this run's steps 0..%d (a finished run has nothing to resume)", ck.Step, steps-1)
	case !finite(ck.Theta) || !finite(ck.OptState):
		return errors.New("holds a θ or optimizer state that is not finite")
	}
	return nil
}

// restore takes the state of ck: the data's shape (unless this node knows
// it), the models built from it, θ and the optimizer and stopping state.
// checkSteps also requires a step this run has still to do (a checkpoint
// file). A node without its data sets open indexes them alone first: the
// models' schedule needs their shards.
func (t *trainer) restore(ck checkpoint, checkSteps bool) error {
	if t.data == nil || !t.data.shaped {
		if t.data == nil {
			t.data = &nodeData{task: taskOf(t.cfg)}
		}
		d, s := t.data, ck.Data
		d.rows, d.features, d.classes, d.mean, d.std, d.classCounts, d.shaped = s.Rows, s.Features, s.Classes, s.Mean, s.Std, s.ClassCounts, true
	}
	if t.data.trainSrc == nil {
		ctx, cancel := context.WithTimeout(context.Background(), t.cfg.Cluster.Timeout.Duration)
		defer cancel()
		if err := t.openData(ctx, nil); err != nil {
			return err
		}
	}
	if t.cands == nil {
		if err := t.build(); err != nil {
			return err
		}
	}
	steps := 0
	if checkSteps {
		steps = t.steps
	}
	if err := ck.fits(t.paramsLen(), t.stateLen(), steps); err != nil {
		return err
	}
	t.setTheta(ck.Theta)
	return t.setState(ck.OptState)
}

// readCheckpoint reads the checkpoint at path, for a run of digest. A
// missing file is an error that wraps fs.ErrNotExist.
func readCheckpoint(path, digest string) (checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return checkpoint{}, err
	}
	ck, err := decodeCheckpoint(b, digest)
	if err != nil {
		return checkpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	return ck, nil
}

// loadCheckpoint is -resume's start: a node with a checkpoint takes its
// state; one without has none (step -1) and receives the ring's, as a node
// that joins does. Where no node has one, Run fails (errNoCheckpoint).
func (t *trainer) loadCheckpoint() error {
	ck, err := readCheckpoint(t.checkpointPath(), t.cfg.Digest())
	switch {
	case errors.Is(err, fs.ErrNotExist):
		t.done = -1
		return nil
	case err != nil:
		return fmt.Errorf("-resume: %w", err)
	}
	if err := t.restore(ck, true); err != nil {
		return fmt.Errorf("-resume: %s: %w", t.checkpointPath(), err)
	}
	t.done = ck.Step
	return nil
}
