package node

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dmlrun/dmlrun/train"
)

// checkOutputDir makes sure that dir exists and takes new files, by creating
// and removing one: every node checks before training, since any of them may
// become rank 0 and write the model.
func checkOutputDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".dmlrun-probe-*")
	if err != nil {
		return fmt.Errorf("output directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, fsynced and renamed into place, so that a reader (or a crash)
// sees the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // make the rename itself durable
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// saveModel writes c's model.json (rank 0 only) atomically, then
// training.png from the metrics.csv closed before.
func (t *trainer) saveModel(c *candidate) error {
	sum := sha256.Sum256(floatBytes(c.theta))
	f := train.ModelFile{Shape: c.model.Shape(), Theta: c.theta, FeatureNames: t.data.trainSrc.FeatureNames(),
		Label: t.cfg.Data.Label, Mean: t.data.mean, Std: t.data.std, Steps: c.steps,
		RunDigest: t.cfg.Digest(), ThetaSHA256: hex.EncodeToString(sum[:]), Stopped: c.stopReason}
	if c.lastMetrics.N > 0 {
		set := "test"
		if t.data.test == nil {
			set = "train"
		}
		f.Eval = c.lastMetrics.Report(c.lastEval.Step, set)
	}
	if t.searching() {
		f.Search = t.searchChoice(c)
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	path := filepath.Join(t.cfg.Output.Dir, "model.json")
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("saving the model: %w", err)
	}
	cand := -1
	if t.searching() {
		cand = c.id
	}
	plot, err := saveTrainingPlot(t.cfg.Output.Dir, t.cfg.Name, cand)
	if err != nil {
		return err
	}
	t.log.Info("saved", "model", path, "metrics", filepath.Join(t.cfg.Output.Dir, "metrics.csv"), "plot", plot, Notice)
	return nil
}
