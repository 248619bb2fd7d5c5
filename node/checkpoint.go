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

	"github.com/dmlrun/dmlrun/ring"
)

// checkpoint is what -resume needs to go on exactly where a run stopped:
// θ, the optimizer's state and the step (which fixes the epoch and the
// position in its permutation).
type checkpoint struct {
	RunDigest string    `json:"run_digest"`
	Step      int       `json:"step"`
	Theta     []float64 `json:"theta"`
	OptState  []float64 `json:"optimizer_state"`
	WorldSize int       `json:"world_size"`
	Written   time.Time `json:"written"`
}

func (t *trainer) checkpointPath() string {
	return filepath.Join(t.cfg.Checkpoint.Dir, "checkpoint.json")
}

// saveCheckpoint writes the state atomically (rank 0 only: every node holds
// the same θ).
func (t *trainer) saveCheckpoint() error {
	if t.comm().Rank() != 0 {
		return nil
	}
	b, err := json.Marshal(checkpoint{RunDigest: t.cfg.Digest(), Step: t.done, Theta: t.appendTheta(nil),
		OptState: t.appendState(nil), WorldSize: t.comm().Size(), Written: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := writeFileAtomic(t.checkpointPath(), b); err != nil {
		return fmt.Errorf("checkpoint at step %d: %w", t.done, err)
	}
	t.log.Debug("checkpoint saved", "step", t.done, "path", t.checkpointPath())
	return nil
}

// readCheckpoint reads the checkpoint at path and checks it against the run
// that would resume from it: its run digest, params parameters and stateLen
// optimizer values, a step in 0..steps-1, and nothing non-finite. A missing
// file is an error that wraps fs.ErrNotExist.
func readCheckpoint(path, digest string, params, stateLen, steps int) (checkpoint, error) {
	var ck checkpoint
	b, err := os.ReadFile(path)
	if err != nil {
		return ck, err
	}
	if err := json.Unmarshal(b, &ck); err != nil {
		return checkpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case ck.RunDigest != digest:
		return checkpoint{}, fmt.Errorf("%s was written by another job configuration (run digest %.12s, this one %.12s)", path, ck.RunDigest, digest)
	case len(ck.Theta) != params || len(ck.OptState) != stateLen:
		return checkpoint{}, fmt.Errorf("%s holds %d parameters and %d optimizer values, the model has %d and %d", path, len(ck.Theta), len(ck.OptState), params, stateLen)
	case ck.Step < 0 || ck.Step >= steps:
		return checkpoint{}, fmt.Errorf("%s is at step %d, outside this run's steps 0..%d (a finished run has nothing to resume)", path, ck.Step, steps-1)
	case !finite(ck.Theta) || !finite(ck.OptState):
		return checkpoint{}, fmt.Errorf("%s holds a θ or optimizer state that is not finite", path)
	}
	return ck, nil
}

// resumeFromCheckpoint loads the newest checkpoint any node can read: each
// node that has one takes its θ, optimizer state and step, and the ring
// then syncs as after a failure (syncState): the lowest rank at the newest
// step sends its state to the others.
func (t *trainer) resumeFromCheckpoint(ctx context.Context) error {
	has := []float64{0}
	ck, err := readCheckpoint(t.checkpointPath(), t.cfg.Digest(), t.paramsLen(), t.stateLen(), t.steps)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("-resume: %w", err)
	default:
		t.setTheta(ck.Theta)
		if err := t.setState(ck.OptState); err != nil {
			return fmt.Errorf("-resume: %s: %w", t.checkpointPath(), err)
		}
		t.done, has[0] = ck.Step, 1
	}
	if err := t.comm().AllReduce(ctx, ring.Max, has); err != nil {
		return fmt.Errorf("-resume: %w", err)
	}
	if has[0] == 0 {
		return fmt.Errorf("-resume: no node has a checkpoint (looked for %s)", t.checkpointPath())
	}
	if err := t.syncState(ctx); err != nil {
		return fmt.Errorf("-resume: %w", err)
	}
	t.log.Info("resumed from checkpoint", "step", t.done, "path", t.checkpointPath(), noticeIf(t.comm().Rank() == 0))
	return nil
}
